"""A real server on a loopback port with both municipalities of the demo, and Chromium.

Started like the staff window's test server (tests/web/conftest.py): fresh SQLite
databases (municipal and national), the demo's organisations and staff, and the
relay run on demand (``PortalServer.relay``) over the server's own replication
endpoints, as `jumin serve` runs it in the background. Screenshots go to the folder
the web tests use (test-artifacts/web), named portal-* and e2e-*; with
JUMIN_UPDATE_DOC_IMAGES=1 the documented ones are copied to docs/images/portal-*.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import Role
from jumin.app import create_app
from jumin.db import make_engine, unit_of_work
from jumin.demo import DemoCredential, seed
from jumin.loopback import register_local_keys
from jumin.network_client import InProcessNetworkClient
from jumin.registry import relay as relay_service
from tests import factories
from tests.conftest import fresh_database_url
from tests.portal.support import CHIYODA, Holder, card_holder
from tests.web.conftest import add_staff_session
from tests.web.conftest import shot as web_shot


@dataclass
class PortalServer:
    url: str
    engine: Engine
    national: Engine
    network: InProcessNetworkClient
    credentials: dict[str, DemoCredential]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def municipal(self) -> AbstractContextManager[Session]:
        return unit_of_work(self.engine)

    def national_unit(self) -> AbstractContextManager[Session]:
        return unit_of_work(self.national)

    def relay(self) -> relay_service.RelayReport:
        """One relay cycle: the outbox to the national inbox, 転出証明書情報 back as arrivals."""
        with self._lock:
            register_local_keys(self.engine, self.national)
            worker = relay_service.Relay(url=self.url, engine=self.engine)
            try:
                report = worker.run_once()
            finally:
                worker.close()
        assert report.errors == [], report
        return report

    def holder(self, lg_code: str = CHIYODA) -> Holder:
        return card_holder(self.municipal, self.national_unit, self.network, self.relay, lg_code=lg_code)

    def staff(self, *roles: Role, org: str = CHIYODA) -> factories.Staff:
        with unit_of_work(self.engine) as session:
            return factories.staff(session, *roles, org=org)

    def staff_token(self, who: factories.Staff) -> str:
        with unit_of_work(self.engine) as session:
            return accounts.login(
                session, login=who.login, password=who.password, totp_code=who.code()
            ).access_token


@pytest.fixture(scope="session")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    tmp = tmp_path_factory.mktemp("portal")
    engine = make_engine(fresh_database_url("sqlite", tmp, "portal"))
    national = make_engine(fresh_database_url("sqlite", tmp, "portal_national"))
    network = InProcessNetworkClient(lambda: unit_of_work(national))
    with unit_of_work(engine) as session:
        credentials = {c.login: c for c in seed(session, tmp / "var")}
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
    yield PortalServer(f"http://127.0.0.1:{port}", engine, national, network, credentials)
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.dispose()
    national.dispose()


def new_context(browser: Any, server: PortalServer) -> Any:
    ctx = browser.new_context(
        base_url=server.url,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        viewport={"width": 1100, "height": 800},
        accept_downloads=True,
    )
    ctx.set_default_timeout(15_000)
    return ctx


@pytest.fixture
def portal_context(browser: Any, portal_server: PortalServer) -> Iterator[Any]:
    ctx = new_context(browser, portal_server)
    yield ctx
    ctx.close()


@pytest.fixture
def portal_page(portal_context: Any) -> Any:
    return portal_context.new_page()


def staff_sign_in(context: Any, server: PortalServer, who: factories.Staff) -> None:
    """A logged-in staff browser without typing: the cookie the staff login form would set."""
    add_staff_session(context, server.staff_token(who))


def shot(page: Any, name: str, *, doc: bool = False) -> None:
    """A whole-page screenshot per step; the docs' copy (docs/images/<name>.png) on request."""
    web_shot(page, name, doc=doc, full_page=True, doc_name=name)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def portal_log_in(page: Any, who: Holder, pin: str | None = None) -> None:
    """Log in with the card through the login form, keyboard-free but as a person would."""
    page.goto("/portal/login")
    page.get_by_label("カード番号").fill(who.card_number)
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill(who.pin if pin is None else pin)
    page.get_by_role("button", name="ログイン").click()
