from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from tests import factories

CHIYODA = "131016"
SAPPORO = "011002"
Headers = dict[str, str]


def today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


def days_ago(n: int) -> str:
    return (today() - dt.timedelta(days=n)).isoformat()


@pytest.fixture
def chiyoda(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=CHIYODA))


@pytest.fixture
def sapporo(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=SAPPORO))


def member(
    family: str = "山田",
    given: str = "太郎",
    kana: tuple[str, str] = ("ヤマダ", "タロウ"),
    *,
    birth: str = "1980-04-01",
    sex: str = "male",
    relationship: str = "世帯主",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "family_name": family,
        "given_name": given,
        "family_name_kana": kana[0],
        "given_name_kana": kana[1],
        "birth_date": birth,
        "sex": sex,
        "relationship": relationship,
        "honseki": "東京都千代田区千代田1番",
        "hittousha": f"{family}　{given}",
        **extra,
    }


Post = Callable[..., dict[str, Any]]


@pytest.fixture
def post(client: TestClient) -> Post:
    def _post(slug: str, body: dict[str, Any], headers: Headers, status: int = 201) -> dict[str, Any]:
        r = client.post(f"/registry/events/{slug}", json=body, headers=headers)
        assert r.status_code == status, r.text
        result: dict[str, Any] = r.json()
        return result

    return _post


@pytest.fixture
def get(client: TestClient) -> Callable[..., Any]:
    def _get(path: str, headers: Headers, status: int = 200, **params: Any) -> Any:
        r = client.get(path, headers=headers, params=params)
        assert r.status_code == status, r.text
        return r.json()

    return _get


def family_from_abroad(
    post: Post, headers: Headers, *, moved: int = 30, line: str = "千代田一丁目1番1号"
) -> dict[str, Any]:
    """A family of three arriving from abroad: new codes and numbers for everyone."""
    return post(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(moved),
            "notified_on": days_ago(moved - 2),
            "address": {"line": line, "katagaki": "千代田ハイツ101"},
            "previous_address": "アメリカ合衆国",
            "members": [
                member(),
                member(
                    "山田", "花子", ("ヤマダ", "ハナコ"), birth="1982-06-15", sex="female", relationship="妻"
                ),
                member("山田", "一郎", ("ヤマダ", "イチロウ"), birth="2012-02-29", relationship="子"),
            ],
        },
        headers,
    )
