"""As-of (``on``) and known-at (``known_at``) reads across several changes, late ones included.

One resident's timeline, recorded in this order through the API:

    E1  国外転入    effective day -100  (with his wife; he is 世帯主)     address A
    E2  転居        effective day  -60  (both)                           address C
    E3  氏名の変更  effective day  -30  山田 → 佐藤
    E4  転居        effective day  -80  (both; notified late, recorded after E3)  address B
    E5  誤記修正    effective day -100  birth date 1980-04-01 → 1980-04-10
    E6  氏名の変更  effective day  -20  given name 太郎 → 次郎 (a mistake)
    E7  取消し      of E6
    E8  死亡        effective day   -5  (his wife becomes 世帯主)

Each read is made through the service and through ``GET /registry/...``; both must agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.core.errors import NotFound
from jumin.network_client import InProcessNetworkClient
from jumin.registry import service
from jumin.registry.domain import RELATIONSHIP_HEAD, RecordStatus, RemovalReason
from tests.registry.conftest import CHIYODA, Headers, Post, days_ago, member, today

ADDRESS_A = "千代田一丁目1番1号"
ADDRESS_B = "神田神保町二丁目3番"
ADDRESS_C = "九段南一丁目2番"
BIRTH_AS_NOTIFIED = dt.date(1980, 4, 1)
BIRTH_CORRECTED = dt.date(1980, 4, 10)


def day(n: int) -> dt.date:
    return today() - dt.timedelta(days=n)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Timeline:
    """The persons, household and events of the scenario, and a moment after each event."""

    taro: int
    hanako: int
    household: int
    events: dict[str, int] = field(default_factory=dict)
    after: dict[str, dt.datetime] = field(default_factory=dict)
    before_anything: dt.datetime = field(default_factory=now)


class Reader:
    """Reads one person or household through the service and through HTTP, checking they agree."""

    def __init__(
        self, db: Session, network: InProcessNetworkClient, client: TestClient, headers: Headers
    ) -> None:
        self.db = db
        self.client = client
        self.headers = headers
        self.ctx = service.RegistryContext(
            actor=Actor(kind=ActorKind.STAFF, actor_id="history-reader", organisation_code=CHIYODA),
            lg_code=CHIYODA,
            network=network,
        )

    def record(
        self, person_id: int, *, on: dt.date | None = None, known_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The record as the API shows it, after checking the service returns the same version."""
        params: dict[str, str] = {}
        if on is not None:
            params["on"] = on.isoformat()
        if known_at is not None:
            params["known_at"] = known_at.isoformat()
        response = self.client.get(f"/registry/persons/{person_id}", headers=self.headers, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        view = service.get_record(
            self.db, ctx=self.ctx, person_id=person_id, on=on, known_at=known_at, purpose="履歴の確認"
        )
        assert (view.valid_from.isoformat(), view.record.address.line, view.record.name) == (
            body["valid_from"],
            body["address_line"],
            body["name"],
        )
        assert view.record.birth_date.isoformat() == body["birth_date"]
        assert view.record.status.value == body["status"]
        return body

    def no_record(self, person_id: int, *, on: dt.date, known_at: dt.datetime | None = None) -> None:
        params = {"on": on.isoformat()} | ({"known_at": known_at.isoformat()} if known_at else {})
        response = self.client.get(f"/registry/persons/{person_id}", headers=self.headers, params=params)
        assert response.status_code == 404, response.text
        assert response.json()["type"] == "urn:jumin:problem:not-found"
        with pytest.raises(NotFound):
            service.get_record(
                self.db, ctx=self.ctx, person_id=person_id, on=on, known_at=known_at, purpose="履歴の確認"
            )

    def household(
        self, household_id: int, *, on: dt.date, known_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        params = {"on": on.isoformat()} | ({"known_at": known_at.isoformat()} if known_at else {})
        response = self.client.get(
            f"/registry/households/{household_id}", headers=self.headers, params=params
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        view = service.get_household(
            self.db, ctx=self.ctx, household_id=household_id, on=on, known_at=known_at, purpose="履歴の確認"
        )
        assert [m.person_id for m in view.members] == [m["person_id"] for m in body["members"]]
        assert view.head_person_id == body["head_person_id"]
        return body


def _version(client: TestClient, headers: Headers, person_id: int) -> int:
    response = client.get(f"/registry/persons/{person_id}", headers=headers)
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def _refs(client: TestClient, headers: Headers, *person_ids: int) -> list[dict[str, int]]:
    return [{"person_id": p, "version": _version(client, headers, p)} for p in person_ids]


@pytest.fixture
def reader(db: Session, network: InProcessNetworkClient, client: TestClient, chiyoda: Headers) -> Reader:
    return Reader(db, network, client, chiyoda)


@pytest.fixture
def timeline(post: Post, client: TestClient, chiyoda: Headers) -> Timeline:
    t = Timeline(taro=0, hanako=0, household=0)

    def mark(name: str, outcome: dict[str, Any]) -> None:
        t.events[name] = outcome["event_id"]
        t.after[name] = now()

    moved_in = post(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(100),
            "notified_on": days_ago(98),
            "address": {"line": ADDRESS_A},
            "previous_address": "アメリカ合衆国",
            "members": [
                member(birth=BIRTH_AS_NOTIFIED.isoformat()),
                member(
                    "山田", "花子", ("ヤマダ", "ハナコ"), birth="1982-06-15", sex="female", relationship="妻"
                ),
            ],
        },
        chiyoda,
    )
    t.taro, t.hanako = moved_in["person_ids"]
    t.household = moved_in["household_ids"][0]
    mark("move_in", moved_in)
    both = (t.taro, t.hanako)
    mark(
        "move_c",
        post(
            "move-within",
            {
                "effective_on": days_ago(60),
                "notified_on": days_ago(55),
                "persons": _refs(client, chiyoda, *both),
                "address": {"line": ADDRESS_C},
            },
            chiyoda,
        ),
    )
    mark(
        "surname",
        post(
            "name-change",
            {
                "effective_on": days_ago(30),
                "notified_on": days_ago(29),
                "person": _refs(client, chiyoda, t.taro)[0],
                "family_name": "佐藤",
                "family_name_kana": "サトウ",
            },
            chiyoda,
        ),
    )
    late = post(
        "move-within",
        {
            "effective_on": days_ago(80),
            "notified_on": days_ago(0),
            "persons": _refs(client, chiyoda, *both),
            "address": {"line": ADDRESS_B},
        },
        chiyoda,
    )
    assert late["late"] is True
    mark("late_move_b", late)
    mark(
        "birth_date",
        post(
            "clerical-correction",
            {
                "effective_on": days_ago(100),
                "person": _refs(client, chiyoda, t.taro)[0],
                "items": {"birth_date": BIRTH_CORRECTED.isoformat()},
                "reason": "届書の生年月日の誤記",
            },
            chiyoda,
        ),
    )
    mark(
        "given_name",
        post(
            "name-change",
            {
                "effective_on": days_ago(20),
                "person": _refs(client, chiyoda, t.taro)[0],
                "family_name": "佐藤",
                "given_name": "次郎",
                "given_name_kana": "ジロウ",
            },
            chiyoda,
        ),
    )
    mark(
        "cancellation",
        post(
            "cancellation",
            {
                "event_id": t.events["given_name"],
                "reason": "別人の届出を誤って記録",
                "versions": _refs(client, chiyoda, t.taro),
            },
            chiyoda,
        ),
    )
    mark(
        "death",
        post(
            "death",
            {
                "effective_on": days_ago(5),
                "notified_on": days_ago(4),
                "person": _refs(client, chiyoda, t.taro)[0],
                "remaining_head_person_id": t.hanako,
            },
            chiyoda,
        ),
    )
    return t


def test_the_record_on_each_date_between_changes(timeline: Timeline, reader: Reader) -> None:
    taro = timeline.taro
    expected = [
        # (day, address, name, valid_from)
        (100, ADDRESS_A, "山田　太郎", 100),
        (81, ADDRESS_A, "山田　太郎", 100),
        (80, ADDRESS_B, "山田　太郎", 80),
        (61, ADDRESS_B, "山田　太郎", 80),
        (60, ADDRESS_C, "山田　太郎", 60),
        (31, ADDRESS_C, "山田　太郎", 60),
        (30, ADDRESS_C, "佐藤　太郎", 30),
        (20, ADDRESS_C, "佐藤　太郎", 30),  # the cancelled 次郎 never counts
        (6, ADDRESS_C, "佐藤　太郎", 30),
    ]
    for n, address, name, valid_from in expected:
        record = reader.record(taro, on=day(n))
        assert (record["address_line"], record["name"], record["valid_from"]) == (
            address,
            name,
            days_ago(valid_from),
        ), f"on day -{n}"
        assert record["status"] == "live"
        # The corrected birth date holds from the start, on every date.
        assert record["birth_date"] == BIRTH_CORRECTED.isoformat()
    assert reader.record(taro, on=day(61))["valid_to"] == days_ago(60)
    assert reader.record(taro, on=day(30))["address_set_on"] == days_ago(60)
    reader.no_record(taro, on=day(101))


def test_known_at_shows_what_the_register_said_then(timeline: Timeline, reader: Reader) -> None:
    taro, after = timeline.taro, timeline.after
    # Before the late move was recorded, day -70 was still at address A, and the birth
    # date was as notified.
    then = reader.record(taro, on=day(70), known_at=after["surname"])
    assert (then["address_line"], then["birth_date"]) == (ADDRESS_A, BIRTH_AS_NOTIFIED.isoformat())
    assert then["valid_from"] == days_ago(100)
    assert then["valid_to"] == days_ago(60)
    # Once it was recorded, the register said B for that day; the birth date was still wrong.
    between = reader.record(taro, on=day(70), known_at=after["late_move_b"])
    assert (between["address_line"], between["birth_date"]) == (ADDRESS_B, BIRTH_AS_NOTIFIED.isoformat())
    # Now: B, and the corrected birth date.
    current = reader.record(taro, on=day(70))
    assert (current["address_line"], current["birth_date"]) == (ADDRESS_B, BIRTH_CORRECTED.isoformat())
    # Right after the move-in, the register knew only address A, for any date after it.
    first = reader.record(taro, on=day(10), known_at=after["move_in"])
    assert (first["address_line"], first["name"], first["valid_to"]) == (ADDRESS_A, "山田　太郎", None)
    # While the mistaken 次郎 stood, day -10 said 次郎; it no longer does.
    assert reader.record(taro, on=day(10), known_at=after["given_name"])["name"] == "佐藤　次郎"
    assert reader.record(taro, on=day(10), known_at=after["cancellation"])["name"] == "佐藤　太郎"
    # Before the death was recorded he was live today; after it, removed.
    assert reader.record(taro, on=today(), known_at=after["cancellation"])["status"] == "live"
    assert reader.record(taro, on=today(), known_at=after["death"])["status"] == "removed"
    # Before anything was recorded, the register had no record of him at all.
    reader.no_record(taro, on=day(50), known_at=timeline.before_anything)


def test_history_lists_superseded_versions(
    timeline: Timeline, client: TestClient, chiyoda: Headers, db: Session, reader: Reader
) -> None:
    response = client.get(f"/registry/persons/{timeline.taro}/history", headers=chiyoda)
    assert response.status_code == 200, response.text
    items = response.json()
    assert len(items) == len(
        service.history(db, ctx=reader.ctx, person_id=timeline.taro, purpose="履歴の確認")
    )
    current = [i for i in items if i["superseded_at"] is None]
    superseded = [i for i in items if i["superseded_at"] is not None]
    assert [(i["valid_from"], i["valid_to"], i["address_line"], i["name"], i["status"]) for i in current] == [
        (days_ago(100), days_ago(80), ADDRESS_A, "山田　太郎", "live"),
        (days_ago(80), days_ago(60), ADDRESS_B, "山田　太郎", "live"),
        (days_ago(60), days_ago(30), ADDRESS_C, "山田　太郎", "live"),
        (days_ago(30), days_ago(5), ADDRESS_C, "佐藤　太郎", "live"),
        (days_ago(5), None, ADDRESS_C, "佐藤　太郎", "removed"),
    ]
    # Nothing is lost: the move-in's open-ended version at A, the [-100, -60) one the late
    # move cut short, and the 次郎 version the cancellation withdrew are all still there.
    events = timeline.events
    assert any(
        i["event_id"] == events["move_in"] and i["valid_to"] is None and i["address_line"] == ADDRESS_A
        for i in superseded
    )
    assert any(
        i["event_id"] == events["move_c"]
        and (i["valid_from"], i["valid_to"]) == (days_ago(100), days_ago(60))
        for i in superseded
    )
    jiro = [i for i in superseded if i["name"] == "佐藤　次郎"]
    assert jiro
    assert all(i["event_id"] == events["given_name"] for i in jiro)
    # A version is superseded when a later one is recorded, never before it was recorded.
    recorded = {i["recorded_at"] for i in items}
    for i in superseded:
        assert i["superseded_at"] in recorded
        assert dt.datetime.fromisoformat(i["superseded_at"]) > dt.datetime.fromisoformat(i["recorded_at"])
    # Each event's versions carry its recording time: the late move was recorded after the
    # name change even though it took effect before it.
    by_event = {i["event_id"]: dt.datetime.fromisoformat(i["recorded_at"]) for i in items}
    assert by_event[events["late_move_b"]] > by_event[events["surname"]]


def test_the_household_on_a_date(timeline: Timeline, reader: Reader) -> None:
    taro, hanako, household = timeline.taro, timeline.hanako, timeline.household
    assert reader.household(household, on=day(101))["members"] == []
    at_b = reader.household(household, on=day(70))
    assert at_b["head_person_id"] == taro
    assert [(m["person_id"], m["relationship"], m["address_line"]) for m in at_b["members"]] == [
        (taro, RELATIONSHIP_HEAD, ADDRESS_B),
        (hanako, "妻", ADDRESS_B),
    ]
    # As the register knew it before the late move: both still at A on that day.
    before_late = reader.household(household, on=day(70), known_at=timeline.after["surname"])
    assert {m["address_line"] for m in before_late["members"]} == {ADDRESS_A}
    # After the death his wife heads the household alone; before it, he did.
    assert reader.household(household, on=day(6))["head_person_id"] == taro
    after_death = reader.household(household, on=day(5))
    assert after_death["head_person_id"] == hanako
    assert [(m["person_id"], m["relationship"]) for m in after_death["members"]] == [
        (hanako, RELATIONSHIP_HEAD)
    ]


def test_a_removed_record_after_death(
    timeline: Timeline, reader: Reader, client: TestClient, chiyoda: Headers, db: Session
) -> None:
    taro = timeline.taro
    # 除票: still readable, removed by death from its date.
    removed = reader.record(taro)
    assert removed["status"] == "removed"
    assert removed["removal_reason"] == "死亡"
    assert removed["removed_on"] == days_ago(5)
    assert removed["name"] == "佐藤　太郎"
    view = service.get_record(db, ctx=reader.ctx, person_id=taro, purpose="除票の確認")
    assert view.record.status is RecordStatus.REMOVED
    assert view.record.removal_reason is RemovalReason.DEATH
    assert reader.record(taro, on=day(6))["status"] == "live"
    # Search finds a 除票 only when asked to.
    default = client.get("/registry/persons", headers=chiyoda, params={"kana": "サトウ"})
    assert default.status_code == 200, default.text
    assert taro not in [r["person_id"] for r in default.json()["results"]]
    with_removed = client.get(
        "/registry/persons", headers=chiyoda, params={"kana": "サトウ", "include_removed": "true"}
    )
    assert with_removed.status_code == 200, with_removed.text
    found = [r for r in with_removed.json()["results"] if r["person_id"] == taro]
    assert [(r["status"], r["removal_reason"]) for r in found] == [("removed", "死亡")]
    assert taro not in [
        r.person_id for r in service.search(db, ctx=reader.ctx, kana="サトウ", purpose="検索").results
    ]
    assert taro in [
        r.person_id
        for r in service.search(
            db, ctx=reader.ctx, kana="サトウ", include_removed=True, purpose="検索"
        ).results
    ]
    # His wife is live and found either way.
    assert timeline.hanako in [
        r.person_id for r in service.search(db, ctx=reader.ctx, kana="ヤマダ", purpose="検索").results
    ]


def test_events_in_order_with_the_cancellation_linked(
    timeline: Timeline, client: TestClient, chiyoda: Headers, db: Session, reader: Reader
) -> None:
    response = client.get(f"/registry/persons/{timeline.taro}/events", headers=chiyoda)
    assert response.status_code == 200, response.text
    events = response.json()
    e = timeline.events
    assert [(x["event_id"], x["kind"]) for x in events] == [
        (e["move_in"], "move_in_from_abroad"),
        (e["move_c"], "move_within"),
        (e["surname"], "name_change"),
        (e["late_move_b"], "move_within"),
        (e["birth_date"], "clerical_correction"),
        (e["given_name"], "name_change"),
        (e["cancellation"], "cancellation"),
        (e["death"], "death"),
    ]
    by_id = {x["event_id"]: x for x in events}
    assert by_id[e["given_name"]]["cancelled_by_event_id"] == e["cancellation"]
    assert by_id[e["cancellation"]]["cancels_event_id"] == e["given_name"]
    assert by_id[e["cancellation"]]["label"] == "異動の取消し"
    assert [x["event_id"] for x in events if x["cancelled_by_event_id"] is not None] == [e["given_name"]]
    assert [x["event_id"] for x in events if x["late"]] == [e["late_move_b"]]
    assert by_id[e["late_move_b"]]["effective_on"] == days_ago(80)
    assert by_id[e["late_move_b"]]["notified_on"] == days_ago(0)
    recorded = [dt.datetime.fromisoformat(x["recorded_at"]) for x in events]
    assert recorded == sorted(recorded)
    assert [x.id for x in service.events_of(db, ctx=reader.ctx, person_id=timeline.taro, purpose="確認")] == [
        x["event_id"] for x in events
    ]


def test_a_late_death_makes_the_remaining_member_head_of_that_household(
    post: Post, client: TestClient, chiyoda: Headers, reader: Reader
) -> None:
    family = post(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(100),
            "address": {"line": ADDRESS_A},
            "previous_address": "アメリカ合衆国",
            "members": [
                member(),
                member(
                    "山田", "花子", ("ヤマダ", "ハナコ"), birth="1982-06-15", sex="female", relationship="妻"
                ),
            ],
        },
        chiyoda,
    )
    taro, hanako = family["person_ids"]
    household = family["household_ids"][0]
    version = client.get(f"/registry/households/{household}", headers=chiyoda).json()["version"]
    # She set up her own household on day -50 ...
    split = post(
        "household-split",
        {
            "effective_on": days_ago(50),
            "household": {"household_id": household, "version": version},
            "members": [{"person_id": hanako, "relationship": RELATIONSHIP_HEAD}],
        },
        chiyoda,
    )
    her_household = next(h for h in split["household_ids"] if h != household)
    # ... and his death on day -80 is notified afterwards, naming her the new head.
    post(
        "death",
        {
            "effective_on": days_ago(80),
            "notified_on": days_ago(0),
            "person": _refs(client, chiyoda, taro)[0],
            "remaining_head_person_id": hanako,
        },
        chiyoda,
    )
    # On day -70 she headed *his* household: hers did not exist before day -50.
    assert reader.record(hanako, on=day(70))["household_id"] == household
    assert reader.household(household, on=day(70))["head_person_id"] == hanako
    assert reader.household(her_household, on=day(70))["members"] == []
