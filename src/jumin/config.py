"""Settings from the environment, read once.

Everything a deployment varies lives here so that the rest of the code never reads
``os.environ`` itself. Secrets (keys) live in files under ``key_dir``, outside the
database, so that a stolen database dump does not carry the keys that open it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    var_dir: Path
    database_url: str
    national_database_url: str
    key_dir: Path
    token_ttl_minutes: int
    lockout_threshold: int
    lockout_minutes: int
    audit_checkpoint_every: int
    log_level: str
    # `jumin serve` relays the outbox to its own national inbox this often; 0 turns it off.
    relay_interval_seconds: float = 5.0
    # `jumin serve` runs the card worker (identity sweep, four-facts webhooks, daily expiry;
    # `jumin card worker`) in the same process this often; 0 turns it off.
    card_worker_interval_seconds: float = 30.0
    # The national server this municipal system asks over HTTP (広域交付); empty: the
    # national side in this process (`jumin serve`, every role in one process).
    network_url: str = ""
    # Each organisation's audit log is this many hash chains (lanes), so that concurrent
    # transactions append without waiting for each other's commit; 1 is a single chain.
    audit_chain_lanes: int = 32

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        var_dir = Path(e.get("JUMIN_VAR_DIR", "var")).resolve()
        default_db = f"sqlite:///{var_dir / 'jumin.db'}"
        # The national network's own database: the two roles never share one (DESIGN.md).
        default_national_db = f"sqlite:///{var_dir / 'national.db'}"
        return Settings(
            var_dir=var_dir,
            database_url=e.get("JUMIN_DATABASE_URL", default_db),
            national_database_url=e.get("JUMIN_NATIONAL_DATABASE_URL", default_national_db),
            key_dir=Path(e.get("JUMIN_KEY_DIR", str(var_dir / "keys"))).resolve(),
            token_ttl_minutes=int(e.get("JUMIN_TOKEN_TTL_MINUTES", "480")),
            lockout_threshold=int(e.get("JUMIN_LOCKOUT_THRESHOLD", "5")),
            lockout_minutes=int(e.get("JUMIN_LOCKOUT_MINUTES", "15")),
            audit_checkpoint_every=int(e.get("JUMIN_AUDIT_CHECKPOINT_EVERY", "100")),
            log_level=e.get("JUMIN_LOG_LEVEL", "INFO"),
            relay_interval_seconds=float(e.get("JUMIN_RELAY_INTERVAL_SECONDS", "5")),
            card_worker_interval_seconds=float(e.get("JUMIN_CARD_WORKER_INTERVAL_SECONDS", "30")),
            network_url=e.get("JUMIN_NETWORK_URL", "").strip(),
            audit_chain_lanes=max(1, int(e.get("JUMIN_AUDIT_CHAIN_LANES", "32"))),
        )


@cache
def get_settings() -> Settings:
    return Settings.from_env()
