"""JPKI settings from the environment (the card's counterpart of jumin.config).

- ``JUMIN_JPKI_PASSPHRASE`` encrypts the CA private keys at rest (PKCS#8, PBES2 with
  AES-256). It is read when a CA key is created or opened, never stored. Unset, the
  CAs cannot be used (``JpkiUnavailable``, HTTP 503) — except in the demo deployment
  made by ``jumin demo seed`` (``var/demo-credentials.json`` exists), where a fixed,
  public development passphrase lets ``make run`` work out of the box; the same rule as
  the certificate-signing CA (``certificates.signing.passphrase``).
- ``JUMIN_JPKI_BASE_URL`` is the public address written into certificates for the CRL
  (CRL distribution points) and the OCSP responder (authority information access).
- ``JUMIN_JPKI_CRL_HOURS`` is how long a CRL is current (its nextUpdate).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cache

from jumin.config import get_settings
from jumin.core.errors import DomainError

__all__ = [
    "DEV_PASSPHRASE",
    "PASSPHRASE_ENV",
    "JpkiSettings",
    "JpkiUnavailable",
    "jpki_settings",
    "passphrase",
]

log = logging.getLogger("jumin.card.jpki")

PASSPHRASE_ENV = "JUMIN_JPKI_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
# Public on purpose: it protects nothing but the demo's throw-away CA keys (docs/card.md).
DEV_PASSPHRASE = "jumin-dev-jpki-passphrase-not-for-production"  # noqa: S105


class JpkiUnavailable(DomainError):
    """The deployment cannot use its CAs: a missing or wrong passphrase is the operator's problem."""

    status = 503
    type_slug = "jpki-unavailable"
    title = "公的個人認証の認証局を利用できる状態ではありません"


@dataclass(frozen=True, slots=True)
class JpkiSettings:
    base_url: str
    crl_hours: int

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> JpkiSettings:
        e = os.environ if env is None else env
        return JpkiSettings(
            base_url=e.get("JUMIN_JPKI_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            crl_hours=int(e.get("JUMIN_JPKI_CRL_HOURS", "24")),
        )


@cache
def jpki_settings() -> JpkiSettings:
    return JpkiSettings.from_env()


def passphrase() -> bytes:
    """The CA keys' passphrase, read from the environment each time it is needed."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode()
    if (get_settings().var_dir / "demo-credentials.json").exists():
        log.warning("JUMIN_JPKI_PASSPHRASE is unset: using the demo passphrase (demo deployment only)")
        return DEV_PASSPHRASE.encode()
    raise JpkiUnavailable(
        f"環境変数 {PASSPHRASE_ENV} (公的個人認証の認証局の秘密鍵を暗号化するパスフレーズ) が"
        "設定されていません。運用者が設定してから再度お試しください。"
    )
