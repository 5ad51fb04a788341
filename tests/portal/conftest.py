"""The resident portal: without a browser (TestClient on the rolled-back test transactions)
and in Chromium (a real server on a loopback port, as the staff window's tests run it).
"""

from __future__ import annotations

import os

# Certificates are signed with keys encrypted under this; set before certificate code reads it.
os.environ.setdefault("JUMIN_CA_PASSPHRASE", "test-ca-passphrase")

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.db import finish_failed
from jumin.network_client import InProcessNetworkClient
from jumin.registry import relay as relay_service
from tests import factories
from tests.network.replication_support import register
from tests.portal.live import (  # noqa: F401 (fixtures for the browser tests)
    portal_context,
    portal_page,
    portal_server,
)
from tests.portal.support import CHIYODA, SAPPORO, Holder, card_holder, csrf


@contextmanager
def _joined(session: Session) -> Iterator[Session]:
    try:
        yield session
        session.commit()
    except BaseException as exc:
        finish_failed(session, exc)
        raise


@pytest.fixture
def browser_client(app: FastAPI) -> Iterator[TestClient]:
    # https: the session cookie is Secure off localhost, and httpx sends it back over TLS only.
    with TestClient(app, base_url="https://jumin.example", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def relay(browser_client: TestClient, db: Session, national_db: Session) -> relay_service.Relay:
    factories.organisation(db, CHIYODA, name="千代田区")
    factories.organisation(db, SAPPORO, name="札幌市")
    register(national_db, CHIYODA, SAPPORO)
    return relay_service.Relay(
        url="https://jumin.example", http=browser_client, session_scope=lambda: _joined(db)
    )


@pytest.fixture
def make_holder(
    db: Session, national_db: Session, network: InProcessNetworkClient, relay: relay_service.Relay
) -> Any:
    def make(lg_code: str = CHIYODA) -> Holder:
        return card_holder(
            lambda: _joined(db), lambda: _joined(national_db), network, relay.run_once, lg_code=lg_code
        )

    return make


@pytest.fixture
def holder(make_holder: Any) -> Holder:
    return make_holder()


def log_in(client: TestClient, who: Holder, pin: str | None = None, next: str = "") -> Any:
    page = client.get("/portal/login")
    return client.post(
        "/portal/login",
        data={
            "csrf_token": csrf(page.text),
            "card_number": who.card_number,
            "pin": who.pin if pin is None else pin,
            "next": next,
        },
        follow_redirects=False,
    )


def token_of(client: TestClient) -> str:
    """The CSRF token of the logged-in session, read from the menu page."""
    return csrf(client.get("/portal/").text)
