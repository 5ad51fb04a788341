from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
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


def token_with_holder(
    session: Session, token_hash: str
) -> tuple[ApiToken, StaffAccount | None, AgencyClient | None, Organisation] | None:
    """The token, the account or client holding it and their organisation, in one query.

    Every API request starts here, so the three lookups are one round trip.
    """
    row = session.execute(
        select(ApiToken, StaffAccount, AgencyClient, Organisation)
        .outerjoin(StaffAccount, StaffAccount.id == ApiToken.account_id)
        .outerjoin(AgencyClient, AgencyClient.id == ApiToken.client_id)
        .join(
            Organisation,
            Organisation.id == func.coalesce(StaffAccount.organisation_id, AgencyClient.organisation_id),
        )
        .where(ApiToken.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    token, account, client, organisation = row
    return token, account, client, organisation


def token_by_id(session: Session, token_id: int) -> ApiToken:
    return session.get_one(ApiToken, token_id)
