"""The situations the window's screens start from, built through the real use cases.

A resident arrives from abroad in one municipality, the relay carries the record to the
national identity store, a card is made and handed over, the resident files a 転出 to
another municipality and the relay brings the 転出証明書情報 there. The same steps serve
the TestClient tests (sessions joined to the test's transactions) and the browser tests
(a real server on its own databases).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.card import repository as card_repository
from jumin.card import service as cards
from jumin.card.domain import ApplicationReason, IdentityDocument
from jumin.card.jpki import service as jpki
from jumin.db import finish_failed
from jumin.network_client import NetworkClient
from jumin.registry import service as registry
from jumin.registry.relay import Relay, RelayReport
from jumin.registry.schemas import MoveInRequest, MoveOutRequest, PersonRef

CHIYODA = "131016"
SAPPORO = "011002"
AUTH_PIN = "1234"
SIGNING_PIN = "ABCD1234"
OPERATOR = Actor(kind=ActorKind.STAFF, actor_id="operator", organisation_code="national")
_names = itertools.count(1)
# Given names the tests can find by kana, one per resident made.
_GIVEN = [
    ("一郎", "イチロウ"),
    ("二郎", "ジロウ"),
    ("三郎", "サブロウ"),
    ("四郎", "シロウ"),
    ("五郎", "ゴロウ"),
    ("六郎", "ロクロウ"),
    ("七郎", "シチロウ"),
    ("八郎", "ハチロウ"),
    ("九郎", "クロウ"),
    ("十郎", "ジュウロウ"),
]

Units = Callable[[], AbstractContextManager[Session]]


@dataclass
class World:
    municipal: Units
    national: Units
    network: NetworkClient
    relay: Callable[[], RelayReport]


def _joined(session: Session) -> Units:
    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            finish_failed(session, exc)
            raise

    return scope


def joined_world(http: httpx.Client, db: Session, national_db: Session, network: NetworkClient) -> World:
    """The world inside a test's two rolled-back transactions; the relay talks to the app through ``http``.

    The caller registers the municipalities' keys with the national side and creates the
    organisations the relay serves (it collects 転出証明書情報 for those only).
    """
    relay = Relay(url=str(http.base_url).rstrip("/"), http=http, session_scope=_joined(db))
    return World(_joined(db), _joined(national_db), network, relay.run_once)


@dataclass(frozen=True)
class Resident:
    person_id: int
    resident_code: str
    name: str
    kana: str
    household_id: int


def today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


def clerk_context(world: World, lg_code: str) -> registry.RegistryContext:
    return registry.RegistryContext(
        actor=Actor(kind=ActorKind.STAFF, actor_id=f"clerk-{lg_code}", organisation_code=lg_code),
        lg_code=lg_code,
        network=world.network,
    )


def arrive_from_abroad(
    world: World,
    *,
    family: tuple[str, str] = ("移動", "イドウ"),
    lg_code: str = CHIYODA,
    members: int = 1,
    days_ago: int = 60,
) -> list[Resident]:
    """A household from abroad (new codes and numbers), the first member its head."""
    people = []
    for i in range(members):
        given, given_kana = _GIVEN[(next(_names) - 1) % len(_GIVEN)]
        people.append(
            {
                "family_name": family[0],
                "given_name": given,
                "family_name_kana": family[1],
                "given_name_kana": given_kana,
                "birth_date": dt.date(1985 - 3 * i, 5, 1 + i).isoformat(),
                "sex": "male",
                "relationship": "世帯主" if i == 0 else "子",
                "honseki": "東京都千代田区千代田1番",
                "hittousha": f"{family[0]}　{given}",
            }
        )
    request = MoveInRequest.model_validate(
        {
            "effective_on": (today() - dt.timedelta(days=days_ago)).isoformat(),
            "address": {"line": "千代田一丁目1番1号", "katagaki": "千代田ハイツ201"},
            "previous_address": "アメリカ合衆国",
            "members": people,
        }
    )
    ctx = clerk_context(world, lg_code)
    with world.municipal() as session:
        outcome = registry.run_command(session, ctx=ctx, slug="move-in-from-abroad", request=request)
        views = [
            registry.get_record(session, ctx=ctx, person_id=p, purpose="テスト") for p in outcome.person_ids
        ]
    return [
        Resident(
            v.person_id,
            v.record.resident_code,
            v.record.name,
            v.record.name_kana or "",
            v.record.household_id,
        )
        for v in views
    ]


def issue_card(world: World, resident: Resident, *, lg_code: str = CHIYODA, hand_over: bool = True) -> str:
    """Apply, produce, set up, and (unless told not to) hand over a card; returns its number."""
    clerk = Actor(kind=ActorKind.STAFF, actor_id=f"clerk-{lg_code}", organisation_code=lg_code)
    with world.national() as session:
        jpki.ensure_authorities(session)
        cards.apply(
            session,
            actor=clerk,
            lg_code=lg_code,
            resident_code=resident.resident_code,
            reason=ApplicationReason.NEW,
            photo_ref="photo:sha256:0f1e2d",
        )
        cards.produce(session, actor=OPERATOR)
        cards.pre_issuance_setup(session, actor=OPERATOR)
        number = card_repository.cards_of(session, resident.resident_code)[-1].card_number
        if hand_over:
            cards.hand_over(
                session,
                actor=clerk,
                lg_code=lg_code,
                card_number=number,
                identity_documents=[IdentityDocument.DRIVERS_LICENCE],
                auth_pin=AUTH_PIN,
                signing_pin=SIGNING_PIN,
            )
    return number


def move_out(
    world: World,
    residents: list[Resident],
    *,
    lg_code: str = CHIYODA,
    destination_lg_code: str = SAPPORO,
    destination: str = "北海道札幌市中央区北1条西2丁目1番",
    planned_in: int = 3,
) -> int:
    """A 転出 with a 転入予約 to ``destination_lg_code``; returns the event id."""
    ctx = clerk_context(world, lg_code)
    with world.municipal() as session:
        refs = [
            PersonRef(
                person_id=r.person_id,
                version=registry.get_record(
                    session, ctx=ctx, person_id=r.person_id, purpose="テスト"
                ).version,
            )
            for r in residents
        ]
        request = MoveOutRequest(
            effective_on=today() + dt.timedelta(days=planned_in),
            persons=refs,
            destination=destination,
            destination_lg_code=destination_lg_code,
        )
        return registry.run_command(session, ctx=ctx, slug="move-out", request=request).event_id


def moving_household(
    world: World, *, members: int = 1, card: bool = True, family: tuple[str, str] = ("移動", "イドウ")
) -> tuple[list[Resident], str | None]:
    """Residents of 千代田区 with a card, moving to 札幌市: their 転出証明書情報 has arrived there."""
    people = arrive_from_abroad(world, members=members, family=family)
    replicate(world)
    number = issue_card(world, people[0]) if card else None
    move_out(world, people)
    replicate(world)
    return people, number


def replicate(world: World) -> RelayReport:
    """One relay cycle; a cycle that reports an error is a broken test setup."""
    report = world.relay()
    assert not report.errors, report.errors
    return report
