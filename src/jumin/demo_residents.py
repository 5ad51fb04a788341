"""Residents with a history for the demo: every screen has something to show.

Recorded through the register's own use cases (never inserted behind their back), so
the demo's events, versions, outbox and audit entries are exactly what real work
leaves. Dates are relative to today, so the demo never ages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.network_client import NetworkClient
from jumin.registry import service as registry
from jumin.registry.domain import EventKind
from jumin.registry.schemas import (
    AddressInput,
    AliasEntryRequest,
    BirthRequest,
    MoveInRequest,
    MoveWithinRequest,
    PersonRef,
    RemovalRequest,
)


def _person(**fields: Any) -> dict[str, Any]:
    return {"honseki": "東京都千代田区千代田1番", "birth_date": "1980-04-01", "sex": "male", **fields}


def seed_residents(session: Session, *, lg_code: str, clerk_login: str, network: NetworkClient) -> bool:
    """Seed once: returns False when the municipality already has residents."""
    ctx = registry.RegistryContext(
        actor=Actor(kind=ActorKind.STAFF, actor_id=clerk_login, organisation_code=lg_code),
        lg_code=lg_code,
        network=network,
    )
    if registry.search(session, ctx=ctx, kana="ヤマダ", include_removed=True, purpose="デモ準備").total:
        return False
    today = ctx.today

    def ago(days: int) -> dt.date:
        return today - dt.timedelta(days=days)

    family = registry.move_in(
        session,
        ctx=ctx,
        kind=EventKind.MOVE_IN_FROM_ABROAD,
        request=MoveInRequest.model_validate(
            {
                "effective_on": ago(900).isoformat(),
                "notified_on": ago(898).isoformat(),
                "address": {"line": "千代田一丁目1番1号", "katagaki": "千代田ハイツ101"},
                "previous_address": "アメリカ合衆国",
                "members": [
                    _person(
                        family_name="山田",
                        given_name="太郎",
                        family_name_kana="ヤマダ",
                        given_name_kana="タロウ",
                        relationship="世帯主",
                        hittousha="山田　太郎",
                    ),
                    _person(
                        family_name="山田",
                        given_name="花子",
                        family_name_kana="ヤマダ",
                        given_name_kana="ハナコ",
                        birth_date="1982-06-15",
                        sex="female",
                        relationship="妻",
                        hittousha="山田　太郎",
                    ),
                ],
            }
        ),
    )
    household = family.household_ids[0]

    def version(person_id: int) -> int:
        return registry.get_record(session, ctx=ctx, person_id=person_id, purpose="デモ準備").version

    def household_version(household_id: int) -> int:
        return registry.get_household(session, ctx=ctx, household_id=household_id, purpose="デモ準備").version

    born = ago(400)
    registry.birth(
        session,
        ctx=ctx,
        request=BirthRequest.model_validate(
            {
                "effective_on": born.isoformat(),
                "notified_on": (born + dt.timedelta(days=5)).isoformat(),
                "child": _person(
                    family_name="山田",
                    given_name="さくら",
                    family_name_kana="ヤマダ",
                    given_name_kana="サクラ",
                    birth_date=born.isoformat(),
                    sex="female",
                    relationship="子",
                    hittousha="山田　太郎",
                ),
                "household": {"household_id": household, "version": household_version(household)},
            }
        ),
    )
    members = [
        m.person_id
        for m in registry.get_household(session, ctx=ctx, household_id=household, purpose="デモ準備").members
    ]
    registry.move_within(
        session,
        ctx=ctx,
        request=MoveWithinRequest(
            effective_on=ago(120),
            notified_on=ago(115),
            persons=[PersonRef(person_id=p, version=version(p)) for p in members],
            address=AddressInput(line="九段南一丁目2番3号", katagaki="九段マンション502"),
        ),
    )

    grandfather = registry.move_in(
        session,
        ctx=ctx,
        kind=EventKind.MOVE_IN_FROM_ABROAD,
        request=MoveInRequest.model_validate(
            {
                "effective_on": ago(700).isoformat(),
                "address": {"line": "神田神保町二丁目5番"},
                "previous_address": "イギリス",
                "members": [
                    _person(
                        family_name="鈴木",
                        given_name="一郎",
                        family_name_kana="スズキ",
                        given_name_kana="イチロウ",
                        birth_date="1940-01-20",
                        relationship="世帯主",
                        hittousha="鈴木　一郎",
                    )
                ],
            }
        ),
    ).person_ids[0]
    registry.removal(
        session,
        ctx=ctx,
        kind=EventKind.DEATH,
        request=RemovalRequest(
            effective_on=ago(60),
            notified_on=ago(58),
            person=PersonRef(person_id=grandfather, version=version(grandfather)),
        ),
    )

    foreigner = registry.move_in(
        session,
        ctx=ctx,
        kind=EventKind.MOVE_IN_FROM_ABROAD,
        request=MoveInRequest.model_validate(
            {
                "effective_on": ago(300).isoformat(),
                "address": {"line": "六番町3番", "katagaki": "六番町レジデンス12"},
                "previous_address": "アメリカ合衆国",
                "members": [
                    {
                        "resident_kind": "foreign",
                        "family_name": "SMITH",
                        "given_name": "JOHN",
                        "family_name_kana": "スミス",
                        "given_name_kana": "ジョン",
                        "birth_date": "1990-07-04",
                        "sex": "male",
                        "relationship": "世帯主",
                        "foreign": {
                            "nationality": "アメリカ合衆国",
                            "category": "mid_to_long_term",
                            "name_alphabet": "SMITH JOHN",
                            "status_of_residence": "技術・人文知識・国際業務",
                            "period_of_stay": "3年",
                            "stay_expires_on": (today + dt.timedelta(days=700)).isoformat(),
                            "residence_card_number": "AB12345678CD",
                        },
                    }
                ],
            }
        ),
    ).person_ids[0]
    registry.alias_entry(
        session,
        ctx=ctx,
        request=AliasEntryRequest(
            effective_on=ago(200),
            person=PersonRef(person_id=foreigner, version=version(foreigner)),
            alias="須美寿　譲",
            alias_kana="スミス　ジョウ",
        ),
    )
    return True
