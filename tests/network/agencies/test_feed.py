"""The change feed: subscribed events for persons the agency knows, by cursor or signed webhook."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.network.agencies import jobs, service
from jumin.network.agencies.domain import WEBHOOK_SIGNATURE_HEADER, verify_webhook
from jumin.network.agencies.models import WebhookDelivery
from tests.network.agencies.conftest import Agency, audit_entries
from tests.network.agencies.store import Person, Store


def _know(client: TestClient, agency: Agency, task: str, *people: Person) -> None:
    """The agency looks the persons up: from then on it holds their agency codes."""
    for p in people:
        r = client.post(
            "/network/v1/lookups/by-resident-code",
            json={"task": task, "resident_code": p.resident_code},
            headers=agency.headers,
        )
        assert r.status_code == 200, r.text


def _feed(client: TestClient, agency: Agency, task: str, **params: object) -> dict[str, object]:
    r = client.get("/network/v1/feed", params={"task": task, **params}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_feed_pages_by_cursor_through_subscribed_events_of_known_persons(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    alice, bob, carol, stranger = (
        store.person(name=n, kana=k)
        for n, k in (
            ("青木 愛", "アオキ アイ"),
            ("馬場 勉", "ババ ツトム"),
            ("千葉 千里", "チバ チサト"),
            ("土井 透", "ドイ トオル"),
        )
    )
    agency = make_agency("nenkin", "pension-benefit")
    _know(client, agency, "pension-benefit", alice, bob, carol)
    r = client.put(
        "/network/v1/subscriptions/pension-benefit",
        json={"events": ["death", "move_out", "move_in"]},
        headers=agency.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["webhook_secret"] is None
    store.change(alice, on=dt.date(2025, 1, 5), change_kind="death", status="removed", removal_reason="death")
    store.change(
        bob, on=dt.date(2025, 1, 6), change_kind="move_within", address="千代田9番"
    )  # not subscribed
    store.change(
        bob, on=dt.date(2025, 2, 1), change_kind="move_in", lg_code="011002", address="中央区北1条西2丁目"
    )
    store.change(
        stranger, on=dt.date(2025, 1, 7), change_kind="death", status="removed", removal_reason="death"
    )
    store.change(
        carol, on=dt.date(2025, 3, 1), change_kind="move_out", status="removed", removal_reason="move_out"
    )

    first = _feed(client, agency, "pension-benefit", limit=2)
    events = first["events"]
    assert isinstance(events, list)
    assert [(e["event"], e["person"]["resident_code"]) for e in events] == [
        ("death", alice.resident_code),
        ("move_in", bob.resident_code),
    ]
    assert events[0]["effective_on"] == "2025-01-05"
    assert events[0]["person"]["status"] == "removed"
    assert events[1]["person"]["address"].startswith("北海道札幌市中央区")
    assert first["has_more"] is True
    second = _feed(client, agency, "pension-benefit", after=first["next_cursor"], limit=2)
    assert [(e["event"], e["person"]["resident_code"]) for e in second["events"]] == [
        ("move_out", carol.resident_code)
    ]  # type: ignore[union-attr]
    assert second["has_more"] is False
    empty = _feed(client, agency, "pension-benefit", after=second["next_cursor"])
    assert empty["events"] == []
    assert empty["next_cursor"] == second["next_cursor"]
    reads = audit_entries(national_db, action="network.feed_read", actor_id=agency.client_id)
    assert len(reads) == 2
    assert "persons=2" in reads[0].detail
    # Another agency's codes are not in the feed, and not in the events either.
    assert stranger.resident_code not in json.dumps(first) + json.dumps(second)


def test_events_outside_the_task_cannot_be_subscribed(
    client: TestClient, national_db: Session, make_agency: Callable[..., Agency]
) -> None:
    agency = make_agency("nenkin", "pension-status-check")  # death only
    r = client.put(
        "/network/v1/subscriptions/pension-status-check",
        json={"events": ["death", "move_in"]},
        headers=agency.headers,
    )
    assert r.status_code == 403
    assert r.json()["field"] == "events"
    assert (
        audit_entries(national_db, action="access.denied", actor_id=agency.client_id)[-1].detail
        == "feed events not allowed"
    )
    assert (
        client.get(
            "/network/v1/feed", params={"task": "pension-status-check"}, headers=agency.headers
        ).status_code
        == 404
    )
    r = client.put(
        "/network/v1/subscriptions/pension-status-check", json={"events": ["death"]}, headers=agency.headers
    )
    assert r.status_code == 200


def test_a_bad_cursor_is_a_400(client: TestClient, make_agency: Callable[..., Agency]) -> None:
    agency = make_agency("nenkin", "pension-benefit")
    client.put(
        "/network/v1/subscriptions/pension-benefit", json={"events": ["death"]}, headers=agency.headers
    )
    r = client.get(
        "/network/v1/feed", params={"task": "pension-benefit", "after": "abc"}, headers=agency.headers
    )
    assert r.status_code == 400
    assert r.json()["field"] == "after"


def test_a_cursor_never_passes_an_event_still_settling(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    """Row ids and record times need not agree (two batches applied at once): an event
    recorded just now, with a smaller id than a settled one, must not be skipped for ever."""
    alice, bob = (
        store.person(name="青木 愛", kana="アオキ アイ"),
        store.person(name="馬場 勉", kana="ババ ツトム"),
    )
    agency = make_agency("nenkin", "pension-benefit")
    _know(client, agency, "pension-benefit", alice, bob)
    client.put(
        "/network/v1/subscriptions/pension-benefit", json={"events": ["death"]}, headers=agency.headers
    )
    now = dt.datetime.now(dt.UTC)
    store.change(
        alice,
        on=dt.date(2025, 1, 5),
        change_kind="death",
        status="removed",
        removal_reason="death",
        recorded_at=now,
    )
    store.change(
        bob,
        on=dt.date(2025, 1, 6),
        change_kind="death",
        status="removed",
        removal_reason="death",
        recorded_at=now - dt.timedelta(minutes=1),
    )
    early = _feed(client, agency, "pension-benefit")
    assert early["events"] == []  # bob's event waits behind alice's, which is still settling
    assert early["has_more"] is False
    principal = service.client_principal(national_db, client_id=agency.client_id)
    ctx = service.authorize(national_db, principal=principal, task_code="pension-benefit", target="test")
    later = service.read_feed(
        national_db,
        ctx=ctx,
        after=service.parse_cursor(str(early["next_cursor"])),
        limit=10,
        now=now + dt.timedelta(seconds=10),
    )
    assert [e.person.resident_code for e in later.events] == [alice.resident_code, bob.resident_code]


# --- webhooks ------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook receiver on loopback: checks each signature, fails when told to."""

    secret: str = ""
    fail_next: int = 0
    received: list[dict[str, object]] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)
    url: str = ""


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify_webhook(
                state.secret, self.headers[WEBHOOK_SIGNATURE_HEADER], body, now=dt.datetime.now(dt.UTC)
            )
            state.verdicts.append(ok)
            if state.fail_next:
                state.fail_next -= 1
                self.send_response(503)
            elif not ok:
                self.send_response(401)
            else:
                state.received.append(json.loads(body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks_are_signed_retried_with_backoff_and_logged(
    app: FastAPI,
    client: TestClient,
    national_db: Session,
    store: Store,
    make_agency: Callable[..., Agency],
) -> None:
    app.state.webhook_allow_loopback = True
    alice = store.person(name="青木 愛", kana="アオキ アイ")
    agency = make_agency("nenkin", "pension-benefit")
    _know(client, agency, "pension-benefit", alice)

    @contextmanager
    def units() -> Iterator[Session]:
        yield national_db
        national_db.flush()

    with receiver() as hook, httpx.Client() as http:
        r = client.put(
            "/network/v1/subscriptions/pension-benefit",
            json={"events": ["death"], "webhook_url": hook.url},
            headers=agency.headers,
        )
        assert r.status_code == 200, r.text
        hook.secret = r.json()["webhook_secret"]
        assert hook.secret
        assert (
            client.get("/network/v1/subscriptions/pension-benefit", headers=agency.headers).json()[
                "webhook_secret"
            ]
            is None
        )

        assert jobs.deliver_webhooks(units, http=http).attempted == 0  # nothing happened yet
        store.change(
            alice, on=dt.date(2025, 1, 5), change_kind="death", status="removed", removal_reason="death"
        )

        hook.fail_next = 1
        now = dt.datetime.now(dt.UTC)
        first = jobs.deliver_webhooks(units, http=http, now=now)
        assert (first.attempted, first.failed) == (1, 1)
        assert hook.received == []
        assert hook.verdicts == [True]
        # Not due yet: the back-off holds the retry back.
        assert jobs.deliver_webhooks(units, http=http, now=now + dt.timedelta(seconds=5)).attempted == 0
        second = jobs.deliver_webhooks(units, http=http, now=now + dt.timedelta(seconds=31))
        assert (second.delivered, second.events) == (1, 1)
        assert hook.verdicts == [True, True]
        delivered = hook.received[0]
        assert delivered["task"] == "pension-benefit"
        assert [e["person"]["resident_code"] for e in delivered["events"]] == [alice.resident_code]  # type: ignore[union-attr,index]
        # Delivered once: nothing more to send.
        assert jobs.deliver_webhooks(units, http=http, now=now + dt.timedelta(minutes=5)).attempted == 0

    log = client.get("/network/v1/subscriptions/pension-benefit/deliveries", headers=agency.headers).json()
    assert [(d["attempt"], d["outcome"], d["status_code"]) for d in log] == [
        (2, "delivered", 204),
        (1, "failed", 503),
    ]
    assert log[1]["next_attempt_at"] is not None
    rows = national_db.query(WebhookDelivery).count()
    assert rows == 2
    reads = audit_entries(national_db, action="network.feed_read", actor_id=agency.client_id)
    assert ["channel=webhook" in r.detail for r in reads] == [True, True]


def test_a_tampered_webhook_fails_verification() -> None:
    from jumin.network.agencies.domain import sign_webhook

    now = dt.datetime.now(dt.UTC)
    header = sign_webhook("s3cret", int(now.timestamp()), b'{"a":1}')
    assert verify_webhook("s3cret", header, b'{"a":1}', now=now)
    assert not verify_webhook("s3cret", header, b'{"a":2}', now=now)
    assert not verify_webhook("other", header, b'{"a":1}', now=now)
    assert not verify_webhook("s3cret", header, b'{"a":1}', now=now + dt.timedelta(minutes=10))
    assert not verify_webhook("s3cret", "garbage", b"", now=now)


@pytest.mark.parametrize(
    "url",
    ["http://example.org/hook", "ftp://example.org/", "https://user:pw@example.org/", "http://127.0.0.1:9/x"],
)
def test_webhook_urls_must_be_https(client: TestClient, make_agency: Callable[..., Agency], url: str) -> None:
    agency = make_agency("nenkin", "pension-benefit")
    r = client.put(
        "/network/v1/subscriptions/pension-benefit",
        json={"events": ["death"], "webhook_url": url},
        headers=agency.headers,
    )
    assert r.status_code == 400
    assert r.json()["field"] == "webhook_url"
