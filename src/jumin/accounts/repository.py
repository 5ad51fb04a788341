from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from jumin.accounts.models import AgencyClient, ApiToken, Organisation, StaffAccount, StaffRole


def organisation_by_code(session: Session, code: str) -> Organisation | None:
    return session.execute(select(Organisation).where(Organisation.code == code)).scalar_one_or_none()


def organisation_by_id(session: Session, organisation_id: int) -> Organisation:
    return session.get_one(Organisation, organisation_id)


def organisations(session: Session) -> Sequence[Organisation]:
    return session.execute(select(Organisation).order_by(Organisation.code)).scalars().all()


def account_by_login(session: Session, login: str, *, for_update: bool = False) -> StaffAccount | None:
    query = select(StaffAccount).where(StaffAccount.login == login)
    if for_update:
        # Concurrent logins must not both read the same failure count or TOTP step.
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def account_by_id(session: Session, account_id: int) -> StaffAccount:
    return session.get_one(StaffAccount, account_id)


def accounts_of(session: Session, organisation_id: int) -> Sequence[StaffAccount]:
    return (
        session.execute(
            select(StaffAccount)
            .where(StaffAccount.organisation_id == organisation_id)
            .order_by(StaffAccount.login)
        )
        .scalars()
        .all()
    )


def roles_of(session: Session, account_id: int) -> list[str]:
    return list(
        session.execute(
            select(StaffRole.role).where(StaffRole.account_id == account_id).order_by(StaffRole.role)
        ).scalars()
    )


def client_by_client_id(session: Session, client_id: str) -> AgencyClient | None:
    return session.execute(
        select(AgencyClient).where(AgencyClient.client_id == client_id)
    ).scalar_one_or_none()


def client_by_id(session: Session, client_pk: int) -> AgencyClient:
    return session.get_one(AgencyClient, client_pk)


class TokenHolder(NamedTuple):
    """A bearer token with what authentication needs of its holder (an account or a client)."""

    token_id: int
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    account_login: str | None
    account_active: bool | None
    client_id: str | None
    client_active: bool | None
    organisation_code: str
    organisation_kind: str
    roles: frozenset[str]


# Built once: every API request runs it, and building the statement (not only compiling
# it, which SQLAlchemy caches) is a good part of its cost in Python.
_TOKEN_WITH_HOLDER = (
    select(
        ApiToken.id,
        ApiToken.expires_at,
        ApiToken.revoked_at,
        StaffAccount.login,
        StaffAccount.is_active,
        AgencyClient.client_id,
        AgencyClient.is_active,
        Organisation.code,
        Organisation.kind,
        StaffRole.role,
    )
    .outerjoin(StaffAccount, StaffAccount.id == ApiToken.account_id)
    .outerjoin(AgencyClient, AgencyClient.id == ApiToken.client_id)
    .join(
        Organisation,
        Organisation.id == func.coalesce(StaffAccount.organisation_id, AgencyClient.organisation_id),
    )
    .outerjoin(StaffRole, StaffRole.account_id == StaffAccount.id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def token_with_holder(session: Session, token_hash: str) -> TokenHolder | None:
    """The token, the account or client holding it, their organisation and roles, in one query.

    Every API request starts here, so it is one round trip of plain columns: no ORM
    objects are built. An account's roles come as one row each (none for a client).
    """
    rows = session.execute(_TOKEN_WITH_HOLDER, {"token_hash": token_hash}).all()
    if not rows:
        return None
    first = rows[0]
    return TokenHolder(
        token_id=first[0],
        expires_at=first[1],
        revoked_at=first[2],
        account_login=first[3],
        account_active=first[4],
        client_id=first[5],
        client_active=first[6],
        organisation_code=first[7],
        organisation_kind=first[8],
        roles=frozenset(r[9] for r in rows if r[9] is not None),
    )


def token_by_id(session: Session, token_id: int) -> ApiToken:
    return session.get_one(ApiToken, token_id)
