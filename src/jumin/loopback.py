"""The single-process deployment's replication: the same HTTP path, on loopback.

`jumin serve` runs every role in one process, yet the register still reaches the
national inbox only by signed HTTP requests to the server's own port, as a remote
municipality would: the relay runs in a background thread started by the app's
lifespan. In this deployment both key sets sit in the one key directory, so the
municipalities' public keys are registered with the national side automatically, before
each relay cycle (a municipality created since is picked up on the next cycle), and so
is this server's own URL as each one's endpoint for 広域交付: the national side asks the
home register over loopback HTTP too.

The national side's standing work runs here too: the card worker (identity sweep,
four-facts webhooks, daily expiry; what `jumin card worker` runs as its own process in
a split deployment) in a thread of its own on the national database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from sqlalchemy import Engine

from jumin.card import fourfacts
from jumin.card.worker import CardWorker
from jumin.config import get_settings
from jumin.core.replication import municipality_key_name
from jumin.db import unit_of_work
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import service as national
from jumin.network.identity import widearea as wide_area
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


def register_local_keys(
    municipal_engine: Engine, national_db: Engine, *, endpoint: str | None = None
) -> list[str]:
    """Register every local municipality's public key with the local national side (idempotent).

    With ``endpoint`` (this server's own URL), also where each answers the network for
    広域交付: the national side then reaches the home register over loopback HTTP, as it
    would reach a municipality in another building.
    """
    with unit_of_work(municipal_engine) as session:
        codes = municipal.served_municipalities(session)
    with unit_of_work(national_db) as session:
        for lg_code in codes:
            key = load_or_create_ed25519(municipality_key_name(lg_code))
            national.register_key(session, lg_code=lg_code, public_key_pem=key.public_pem())
            if endpoint is not None:
                wide_area.register_endpoint(session, lg_code=lg_code, url=endpoint)
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
            register_local_keys(municipal_engine, national_db, endpoint=url)

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


def loopback_card_worker() -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An app lifespan that runs the card worker on the app's national database while it serves.

    Off when JUMIN_CARD_WORKER_INTERVAL_SECONDS is 0. A thread, like the relay: the
    worker's rounds are synchronous and a webhook may take seconds to answer.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = get_settings().card_worker_interval_seconds
        if interval <= 0:
            yield
            return
        worker = CardWorker(post=fourfacts.httpx_poster(), engine=app.state.national_engine)
        thread = threading.Thread(
            target=worker.run_forever,
            kwargs={"interval": interval},
            name="jumin-card-worker",
            daemon=True,
        )
        thread.start()
        log.info("card worker started", extra={"interval_seconds": interval})
        try:
            yield
        finally:
            worker.stop.set()
            thread.join(_STOP_TIMEOUT_SECONDS)

    return lifespan


def together(
    *lifespans: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """One app lifespan made of several: started in order, stopped in reverse."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for part in lifespans:
                await stack.enter_async_context(part(app))
            yield

    return lifespan
