"""Residents who hold a card, made through the same use cases a municipality and J-LIS use.

A family is recorded in the register (国外転入), the relay carries their identity to the
national store over the replication HTTP path, and a card is applied for, produced,
set up and handed over with its PINs — the software card a resident then logs in with.
The helpers take session scopes, so that the same steps serve the rolled-back test
transactions (TestClient) and the real server of the browser tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.network_client import NetworkClient
from jumin.registry import relay as relay_service
from jumin.registry import service as registry
from jumin.registry.domain import EventKind
from jumin.registry.schemas import MoveInRequest
from tests.card.helpers import AUTH_PIN, SIGNING_PIN, issue_card

CHIYODA = "131016"
SAPPORO = "011002"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')

Scope = Callable[[], AbstractContextManager[Session]]

_GIVEN = itertools.count(1)
# Given names in katakana and kanji, so that every test's family is told apart on screen.
_NAMES = [
    ("一郎", "イチロウ"),
    ("次郎", "ジロウ"),
    ("三郎", "サブロウ"),
    ("四郎", "シロウ"),
    ("五郎", "ゴロウ"),
    ("六郎", "ロクロウ"),
    ("七郎", "シチロウ"),
    ("八郎", "ハチロウ"),
    ("九郎", "クロウ"),
    ("十郎", "ジュウロウ"),
]
_SURNAMES = [
    ("佐藤", "サトウ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
]


@dataclass(frozen=True)
class Holder:
    """A resident with a card, and the members of their household."""

    person_id: int
    resident_code: str
    name: str
    card_number: str
    suspension_secret: str
    household: tuple[int, ...]
    spouse_name: str
    pin: str = AUTH_PIN
    signing_pin: str = SIGNING_PIN


def today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


def clerk_context(network: NetworkClient, lg_code: str = CHIYODA) -> registry.RegistryContext:
    actor = Actor(kind=ActorKind.STAFF, actor_id="window-clerk", organisation_code=lg_code)
    return registry.RegistryContext(actor=actor, lg_code=lg_code, network=network)


def _person(family: tuple[str, str], given: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "family_name": family[0],
        "given_name": given[0],
        "family_name_kana": family[1],
        "given_name_kana": given[1],
        "birth_date": "1980-04-01",
        "sex": "male",
        "relationship": "世帯主",
        "honseki": "東京都千代田区千代田1番",
        "hittousha": f"{family[0]}　{given[0]}",
        **extra,
    }


def record_family(
    session: Session, network: NetworkClient, *, lg_code: str = CHIYODA
) -> tuple[list[int], str, str]:
    """A head and a spouse arriving from abroad; returns their ids and names."""
    n = next(_GIVEN)
    family = _SURNAMES[n % len(_SURNAMES)]
    given = _NAMES[n % len(_NAMES)]
    outcome = registry.move_in(
        session,
        ctx=clerk_context(network, lg_code),
        kind=EventKind.MOVE_IN_FROM_ABROAD,
        request=MoveInRequest.model_validate(
            {
                "effective_on": (today() - dt.timedelta(days=90)).isoformat(),
                "notified_on": (today() - dt.timedelta(days=88)).isoformat(),
                "address": {"line": f"千代田一丁目{n}番{n}号", "katagaki": f"千代田ハイツ{100 + n}"},
                "previous_address": "アメリカ合衆国",
                "members": [
                    _person(family, given),
                    _person(
                        family,
                        ("花子", "ハナコ"),
                        birth_date="1982-06-15",
                        sex="female",
                        relationship="妻",
                        hittousha=f"{family[0]}　{given[0]}",
                    ),
                ],
            }
        ),
    )
    return list(outcome.person_ids), f"{family[0]}　{given[0]}", f"{family[0]}　花子"


def card_holder(
    municipal: Scope,
    national: Scope,
    network: NetworkClient,
    relay: Callable[[], relay_service.RelayReport],
    *,
    lg_code: str = CHIYODA,
) -> Holder:
    """A new family in ``lg_code``, relayed to the national store, the head holding a card."""
    with municipal() as session:
        ids, name, spouse = record_family(session, network, lg_code=lg_code)
        ctx = clerk_context(network, lg_code)
        code = registry.get_record(
            session, ctx=ctx, person_id=ids[0], purpose="テスト準備"
        ).record.resident_code
    report = relay()
    assert report.errors == [], report
    with national() as session:
        card_number, secret = issue_card(session, code, lg_code=lg_code)
    return Holder(
        person_id=ids[0],
        resident_code=code,
        name=name,
        card_number=card_number,
        suspension_secret=secret,
        household=tuple(ids),
        spouse_name=spouse,
    )


def csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)
