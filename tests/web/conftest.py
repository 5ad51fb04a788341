"""A real server on a loopback port and Debian's Chromium driven by Playwright.

The server runs in a thread of the test process on fresh SQLite databases (municipal and
national), seeded through the same use cases as `make run`'s demo. Browser tests skip
with the reason when Chromium or Playwright is missing, except under
JUMIN_TEST_STRICT=1 (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import datetime as dt
import os

# Certificates issued at the window are signed with a key encrypted with this; set before
# any certificate code reads it.
os.environ.setdefault("JUMIN_CA_PASSPHRASE", "test-ca-passphrase")
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.app import create_app
from jumin.db import make_engine, unit_of_work
from jumin.demo import DEMO_MUNICIPALITY, DemoCredential, seed
from jumin.demo_residents import seed_residents
from jumin.loopback import register_local_keys
from jumin.network_client import InProcessNetworkClient
from jumin.registry.relay import Relay, RelayReport
from jumin.web.security import COOKIE_PATH, SESSION_COOKIE
from tests import factories
from tests.conftest import fresh_database_url
from tests.web.scenario import World

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
DOC_IMAGES = ROOT / "docs" / "images"
CHIYODA = DEMO_MUNICIPALITY[0]


@dataclass
class LiveServer:
    url: str
    engine: Engine
    network: InProcessNetworkClient
    credentials: dict[str, DemoCredential]
    national: Engine

    def relay(self) -> RelayReport:
        """One cycle of the relay against the server, as `jumin serve` runs it every few seconds."""
        register_local_keys(self.engine, self.national)
        worker = Relay(url=self.url, engine=self.engine)
        try:
            report = worker.run_once()
        finally:
            worker.close()
        assert not report.errors, report.errors
        return report

    @property
    def world(self) -> World:
        """The scenario helpers (tests/web/scenario.py) on the server's own databases."""
        return World(
            municipal=lambda: unit_of_work(self.engine),
            national=lambda: unit_of_work(self.national),
            network=self.network,
            relay=self.relay,
        )

    def staff(
        self, *roles: Role, org: str = CHIYODA, kind: OrganisationKind = OrganisationKind.MUNICIPALITY
    ) -> factories.Staff:
        """A fresh account per test: a TOTP code logs in once, so tests never share one."""
        with unit_of_work(self.engine) as session:
            return factories.staff(session, *roles, org=org, kind=kind)

    def token(self, who: factories.Staff) -> str:
        with unit_of_work(self.engine) as session:
            return accounts.login(
                session, login=who.login, password=who.password, totp_code=who.code()
            ).access_token


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("web")
    engine = make_engine(fresh_database_url("sqlite", tmp, "web"))
    national = make_engine(fresh_database_url("sqlite", tmp, "web_national"))
    network = InProcessNetworkClient(lambda: unit_of_work(national))
    with unit_of_work(engine) as session:
        credentials = {c.login: c for c in seed(session, tmp / "var")}
    with unit_of_work(engine) as session:
        seed_residents(session, lg_code=CHIYODA, clerk_login="chiyoda-clerk", network=network)
    app = create_app(engine, network, national_engine=national)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", engine, network, credentials, national)
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.dispose()
    national.dispose()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    ctx = browser.new_context(
        base_url=live_server.url,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        viewport={"width": 1100, "height": 760},
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def add_staff_session(context: Any, token: str) -> None:
    """The cookie the staff login form would have set, for a browser that skips typing."""
    context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": token,
                "domain": "127.0.0.1",
                "path": COOKIE_PATH,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


def sign_in(context: Any, live: LiveServer, who: factories.Staff) -> None:
    add_staff_session(context, live.token(who))


def shot(
    page: Any, name: str, *, doc: bool = False, full_page: bool = False, doc_name: str | None = None
) -> None:
    """A screenshot per step; with JUMIN_UPDATE_DOC_IMAGES=1 also the docs' copy (staff-<name>.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if doc and os.environ.get("JUMIN_UPDATE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{doc_name or 'staff-' + name}.png")


def jst_today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()
