"""The single-process deployment's replication: the same HTTP path, on loopback.

`jumin serve` runs every role in one process, yet the register still reaches the
national inbox only by signed HTTP requests to the server's own port, as a remote
municipality would: the relay runs in a background thread started by the app's
lifespan. In this deployment both key sets sit in the one key directory, so the
municipalities' public keys are registered with the national side automatically, before
each relay cycle (a municipality created since is picked up on the next cycle).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from sqlalchemy import Engine

from jumin.config import get_settings
from jumin.core.replication import municipality_key_name
from jumin.db import unit_of_work
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import service as national
from jumin.registry import relay as municipal

log = logging.getLogger("jumin.relay")

_STOP_TIMEOUT_SECONDS = 10.0


def loopback_url(host: str, port: int) -> str:
    """Where this process's own server answers: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (recognising the wildcard, not binding to it)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def register_local_keys(municipal_engine: Engine, national_db: Engine) -> list[str]:
    """Register every local municipality's public key with the local national side (idempotent)."""
    with unit_of_work(municipal_engine) as session:
        codes = municipal.served_municipalities(session)
    with unit_of_work(national_db) as session:
        for lg_code in codes:
            key = load_or_create_ed25519(municipality_key_name(lg_code))
            national.register_key(session, lg_code=lg_code, public_key_pem=key.public_pem())
    return codes


def loopback_relay(url: str) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An app lifespan that runs the relay against ``url`` while the app serves.

    Off when JUMIN_RELAY_INTERVAL_SECONDS is 0. A thread, not an asyncio task: the relay
    is synchronous (httpx, SQLAlchemy) and must not block the event loop serving its
    own requests.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = get_settings().relay_interval_seconds
        if interval <= 0:
            yield
            return
        municipal_engine: Engine = app.state.engine
        national_db: Engine = app.state.national_engine
        worker = municipal.Relay(url=url, engine=municipal_engine)

        def before_each() -> None:
            register_local_keys(municipal_engine, national_db)

        thread = threading.Thread(
            target=worker.run_forever,
            kwargs={"interval": interval, "before_each": before_each},
            name="jumin-relay",
            daemon=True,
        )
        thread.start()
        log.info("loopback relay started", extra={"interval_seconds": interval})
        try:
            yield
        finally:
            worker.stop.set()
            thread.join(_STOP_TIMEOUT_SECONDS)
            worker.close()

    return lifespan
