"""JPKI settings from the environment, read once (the card's counterpart of jumin.config).

- ``JUMIN_JPKI_PASSPHRASE`` encrypts the CA private keys at rest. Unset, a fixed
  development passphrase is used so that ``make run`` works out of the box — and refused
  outright when ``JUMIN_ENV=production``, where a missing passphrase is a deployment error.
- ``JUMIN_JPKI_BASE_URL`` is the public address written into certificates for the CRL
  (CRL distribution points) and the OCSP responder (authority information access).
- ``JUMIN_JPKI_CRL_HOURS`` is how long a CRL is current (its nextUpdate).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

__all__ = ["DEV_PASSPHRASE", "JpkiSettings", "MissingPassphrase", "jpki_settings"]

# Public on purpose: it protects nothing but demo keys, and docs/card.md names it.
DEV_PASSPHRASE = "jumin-dev-jpki-passphrase-not-for-production"  # noqa: S105


class MissingPassphrase(RuntimeError):
    """Raised at start-up, not per request: production without a passphrase must not run."""


@dataclass(frozen=True, slots=True)
class JpkiSettings:
    passphrase: bytes
    base_url: str
    crl_hours: int
    using_dev_passphrase: bool

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> JpkiSettings:
        e = os.environ if env is None else env
        passphrase = e.get("JUMIN_JPKI_PASSPHRASE", "")
        production = e.get("JUMIN_ENV", "").lower() == "production"
        if not passphrase and production:
            raise MissingPassphrase(
                "JUMIN_ENV=production では JUMIN_JPKI_PASSPHRASE (認証局の秘密鍵を暗号化する"
                "パスフレーズ) の設定が必要です。"
            )
        return JpkiSettings(
            passphrase=(passphrase or DEV_PASSPHRASE).encode(),
            base_url=e.get("JUMIN_JPKI_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            crl_hours=int(e.get("JUMIN_JPKI_CRL_HOURS", "24")),
            using_dev_passphrase=not passphrase,
        )


@cache
def jpki_settings() -> JpkiSettings:
    return JpkiSettings.from_env()
