"""`jumin serve` runs the card worker itself: no `jumin card worker` process beside it.

A resident registered at the window of the one-process server gets a card (the national
steps are done on the deployment's national database, as the operator's commands would)
and consents to a bank with a webhook. A 転居 recorded at the window then reaches the
card through the server alone: its loopback relay brings the change to the national
store, its card worker revokes the signing certificate and pushes the new four facts to
the bank's webhook.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.domain import Actor, ActorKind
from jumin.card import fourfacts, repository, service
from jumin.card.domain import ApplicationReason
from jumin.db import unit_of_work
from tests.card.helpers import AUTH_PIN, DOCS, OPERATOR, PHOTO, SIGNING_PIN, served
from tests.conftest import BACKENDS
from tests.network.servers import Server, deployment
from tests.registry.conftest import member, today

CHIYODA = "131016"


def _clerk_headers(http: httpx.Client, municipal: Engine) -> dict[str, str]:
    with unit_of_work(municipal) as session:
        accounts.ensure_organisation(
            session, code=CHIYODA, kind=OrganisationKind.MUNICIPALITY, name="千代田区"
        )
        new = accounts.create_staff(
            session,
            actor=None,
            organisation_code=CHIYODA,
            login="clerk-card-worker",
            display_name="千代田区",
            roles=[Role.CLERK, Role.SUPERVISOR],
        )
    r = http.post(
        "/auth/login",
        json={
            "login": "clerk-card-worker",
            "password": new.password,
            "totp": pyotp.TOTP(new.totp_secret).now(),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _issue_card(national: Engine, code: str) -> str:
    """Application, production, setup and hand-over, each its own unit of work."""
    clerk = Actor(kind=ActorKind.STAFF, actor_id="clerk", organisation_code=CHIYODA)
    with unit_of_work(national) as session:
        service.apply(
            session,
            actor=clerk,
            lg_code=CHIYODA,
            resident_code=code,
            reason=ApplicationReason.NEW,
            photo_ref=PHOTO,
        )
    with unit_of_work(national) as session:
        service.produce(session, actor=OPERATOR)
    with unit_of_work(national) as session:
        service.pre_issuance_setup(session, actor=OPERATOR)
    with unit_of_work(national) as session:
        number = repository.cards_of(session, code)[-1].card_number
        service.hand_over(
            session,
            actor=clerk,
            lg_code=CHIYODA,
            card_number=number,
            identity_documents=DOCS,
            auth_pin=AUTH_PIN,
            signing_pin=SIGNING_PIN,
        )
    return number


def _signing_status(national: Engine, number: str) -> str:
    with unit_of_work(national) as session:
        card = repository.card_by_number(session, number)
        assert card is not None
        return [c.status for c in service.card_view(session, card).certificates if c.kind == "signing"][-1]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_jumin_serve_revokes_and_delivers_after_a_move_without_a_worker_process(
    backend: str, tmp_path: Path
) -> None:
    received: list[dict[str, Any]] = []
    bank = FastAPI()

    @bank.post("/hook")
    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=204)

    with deployment(backend, tmp_path, "cardworker") as d, served(bank) as bank_url:
        d.env["JUMIN_CARD_WORKER_INTERVAL_SECONDS"] = "0.5"
        municipal, national = d.engine("municipal"), d.engine("national")
        server = Server(d, relay_interval=0.3).start()
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            clerk = _clerk_headers(http, municipal)

            def event(slug: str, body: dict[str, Any]) -> dict[str, Any]:
                r = http.post(f"/registry/events/{slug}", json=body, headers=clerk)
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            def person(person_id: int) -> dict[str, Any]:
                r = http.get(f"/registry/persons/{person_id}", headers=clerk)
                assert r.status_code == 200, r.text
                found: dict[str, Any] = r.json()
                return found

            def drained() -> bool:
                r = http.get("/registry/outbox", params={"undelivered_only": "true"}, headers=clerk)
                return r.status_code == 200 and not r.json()

            arrived = event(
                "move-in-from-abroad",
                {
                    "effective_on": (today() - dt.timedelta(days=30)).isoformat(),
                    "address": {"line": "千代田一丁目1番1号"},
                    "previous_address": "アメリカ合衆国",
                    "members": [member("常駐", "太郎", ("ジョウチュウ", "タロウ"))],
                },
            )
            [person_id] = arrived["person_ids"]
            _wait_for("the arrival to reach the national store", drained)
            number = _issue_card(national, person(person_id)["resident_code"])
            with unit_of_work(national) as session:
                fourfacts.register_business(
                    session, actor=OPERATOR, code="bank", name="銀行", webhook_url=f"{bank_url}/hook"
                )
            with unit_of_work(national) as session:
                login = service.login_with_card(session, card_number=number, pin=AUTH_PIN)
            with unit_of_work(national) as session:
                fourfacts.consent(session, resident=login.principal, business_code="bank", scope=["address"])
            assert _signing_status(national, number) == "good"

            event(
                "move-within",
                {
                    "effective_on": today().isoformat(),
                    "notified_on": today().isoformat(),
                    "persons": [{"person_id": person_id, "version": person(person_id)["version"]}],
                    "address": {"line": "永田町一丁目7番1号"},
                },
            )
            _wait_for(
                "the server's card worker to revoke the signing certificate",
                lambda: _signing_status(national, number) == "revoked",
            )
            _wait_for("the server's card worker to call the bank's webhook", lambda: bool(received))
            assert received[0]["facts"] == {"address": "東京都千代田区永田町一丁目7番1号"}
        finally:
            server.stop()
