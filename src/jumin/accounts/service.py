"""Use cases for accounts, logins and tokens. Services flush; the entry point commits."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.accounts import repository
from jumin.accounts.domain import (
    GENERIC_LOGIN_FAILURE,
    AccountLocked,
    InvalidCredentials,
    OrganisationKind,
    Principal,
    PrincipalKind,
    Role,
    burn_password_check,
    generate_password,
    hash_password,
    hash_secret,
    matching_totp_step,
    new_client_id,
    new_token,
    new_totp_secret,
    totp_uri,
    verify_password,
)
from jumin.accounts.models import AgencyClient, ApiToken, Organisation, StaffAccount, StaffRole
from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.config import get_settings
from jumin.core.errors import AccessDenied, Conflict, Forbidden, InvalidValue, NotFound
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.db import utcnow
from jumin.keys import data_keyring

_TOTP_AAD = "staff-totp"


def actor_of(principal: Principal) -> Actor:
    kind = ActorKind.STAFF if principal.kind is PrincipalKind.STAFF else ActorKind.AGENCY_CLIENT
    return Actor(kind=kind, actor_id=principal.subject, organisation_code=principal.organisation_code)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OrganisationView:
    code: str
    kind: OrganisationKind
    name: str


@dataclass(frozen=True, slots=True)
class NewStaff:
    login: str
    organisation_code: str
    roles: tuple[Role, ...]
    password: str
    totp_secret: str
    totp_uri: str


@dataclass(frozen=True, slots=True)
class AccountView:
    login: str
    display_name: str
    organisation_code: str
    roles: tuple[Role, ...]
    is_active: bool
    mfa_enrolled: bool
    locked_until: dt.datetime | None
    failed_attempts: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_at: dt.datetime
    principal: Principal


@dataclass(frozen=True, slots=True)
class NewAgencyClient:
    client_id: str
    client_secret: str
    organisation_code: str
    name: str


def _view(org: Organisation) -> OrganisationView:
    return OrganisationView(code=org.code, kind=OrganisationKind(org.kind), name=org.name)


def _organisation(session: Session, code: str) -> Organisation:
    org = repository.organisation_by_code(session, code)
    if org is None:
        raise NotFound(f"団体コード {code} の団体は登録されていません。", field="organisation_code")
    return org


def _require_scope(actor: Principal | None, organisation_code: str) -> None:
    """Administrators act inside their own body; the national operator may act on any."""
    if actor is None or Role.OPERATOR in actor.roles:
        return
    if actor.organisation_code != organisation_code:
        raise Forbidden("他の団体のアカウントは操作できません。", field="organisation_code")


def _audit_actor(actor: Principal | None, organisation_code: str) -> Actor:
    return actor_of(actor) if actor is not None else Actor.system(organisation_code)


def ensure_organisation(
    session: Session,
    *,
    code: str,
    kind: OrganisationKind,
    name: str,
    actor: Principal | None = None,
) -> OrganisationView:
    """Create the organisation unless it exists; the same call twice changes nothing."""
    if kind in (OrganisationKind.MUNICIPALITY, OrganisationKind.PREFECTURE):
        _check_public_body_code(code, kind)
    existing = repository.organisation_by_code(session, code)
    if existing is not None:
        if existing.kind != kind.value:
            raise Conflict(f"団体コード {code} は別の種別で登録済みです。", field="code")
        return _view(existing)
    org = Organisation(code=code, kind=kind.value, name=name, created_at=utcnow())
    session.add(org)
    session.flush()
    audit.record(
        session,
        actor=_audit_actor(actor, code),
        action=AuditAction.ORGANISATION_CREATED,
        target_kind="organisation",
        target_id=code,
    )
    return _view(org)


def _check_public_body_code(code: str, kind: OrganisationKind) -> None:
    """A municipality or prefecture is registered under its real 地方公共団体コード."""
    entry = load_master().get(code)  # raises for a bad check digit or an unknown code
    if (kind is OrganisationKind.PREFECTURE) != (entry.kind is MunicipalityKind.PREFECTURE) or (
        kind is OrganisationKind.MUNICIPALITY and not entry.is_municipality
    ):
        raise InvalidValue(
            f"団体コード {code} ({entry.name}) は種別「{kind.value}」の団体ではありません。", field="code"
        )


def list_organisations(session: Session) -> list[OrganisationView]:
    return [_view(o) for o in repository.organisations(session)]


def _validate_login(login: str) -> None:
    if not (3 <= len(login) <= 64) or not all(c.isascii() and (c.isalnum() or c in "._-") for c in login):
        raise InvalidValue("ログイン名は3〜64文字の半角英数字と . _ - で指定してください。", field="login")


def create_staff(
    session: Session,
    *,
    actor: Principal | None,
    organisation_code: str,
    login: str,
    display_name: str,
    roles: Iterable[Role],
    password: str | None = None,
) -> NewStaff:
    """A new staff account with a fresh TOTP secret; MFA is confirmed at first login."""
    _require_scope(actor, organisation_code)
    _validate_login(login)
    role_set = tuple(sorted(set(roles)))
    if not role_set:
        raise InvalidValue("ロールを1つ以上指定してください。", field="roles")
    org = _organisation(session, organisation_code)
    if Role.OPERATOR in role_set and org.kind != OrganisationKind.NATIONAL:
        raise InvalidValue("運用者ロールは全国センターの職員にのみ付与できます。", field="roles")
    if actor is not None and Role.OPERATOR in role_set and Role.OPERATOR not in actor.roles:
        raise Forbidden("運用者ロールを付与する権限がありません。", field="roles")
    if repository.account_by_login(session, login) is not None:
        raise Conflict(f"ログイン名 {login} は既に使われています。", field="login")
    plain = password or generate_password()
    secret = new_totp_secret()
    account = StaffAccount(
        organisation_id=org.id,
        login=login,
        display_name=display_name,
        password_hash=hash_password(plain),
        totp_secret_encrypted=data_keyring().encrypt(secret, _TOTP_AAD + login),
        totp_last_step=0,
        failed_attempts=0,
        is_active=True,
        created_at=utcnow(),
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same login
        raise Conflict(f"ログイン名 {login} は既に使われています。", field="login") from exc
    session.add_all(StaffRole(account_id=account.id, role=r.value) for r in role_set)
    audit.record(
        session,
        actor=_audit_actor(actor, organisation_code),
        action=AuditAction.ACCOUNT_CREATED,
        target_kind="staff_account",
        target_id=login,
        detail="roles=" + ",".join(role_set),
    )
    return NewStaff(
        login=login,
        organisation_code=organisation_code,
        roles=role_set,
        password=plain,
        totp_secret=secret,
        totp_uri=totp_uri(secret, login, organisation_code),
    )


def _principal_for_account(
    session: Session, account: StaffAccount, token_id: int, org: Organisation | None = None
) -> Principal:
    if org is None:
        org = repository.organisation_by_id(session, account.organisation_id)
    return Principal(
        kind=PrincipalKind.STAFF,
        subject=account.login,
        organisation_code=org.code,
        organisation_kind=OrganisationKind(org.kind),
        roles=frozenset(Role(r) for r in repository.roles_of(session, account.id)),
        token_id=token_id,
    )


def _issue(
    session: Session, *, account_id: int | None, client_pk: int | None, now: dt.datetime
) -> tuple[str, ApiToken]:
    token = new_token()
    row = ApiToken(
        token_hash=_token_hash(token),
        account_id=account_id,
        client_id=client_pk,
        issued_at=now,
        expires_at=now + dt.timedelta(minutes=get_settings().token_ttl_minutes),
    )
    session.add(row)
    session.flush()
    return token, row


def login(
    session: Session, *, login: str, password: str, totp_code: str, now: dt.datetime | None = None
) -> IssuedToken:
    """Password and TOTP, both required; a TOTP code is good for one login only."""
    now = now or utcnow()
    settings = get_settings()
    account = repository.account_by_login(session, login, for_update=True)
    if account is None or not account.is_active:
        burn_password_check(password)
        audit.record(
            session,
            actor=Actor(kind=ActorKind.STAFF, actor_id=login[:64], organisation_code="unknown"),
            action=AuditAction.LOGIN_FAILED,
            target_kind="staff_account",
            target_id=login[:64],
            outcome=Outcome.FAILURE,
            detail="unknown or inactive login",
        )
        raise InvalidCredentials(GENERIC_LOGIN_FAILURE)
    org = repository.organisation_by_id(session, account.organisation_id)
    actor = Actor(kind=ActorKind.STAFF, actor_id=account.login, organisation_code=org.code)
    if account.locked_until is not None and account.locked_until > now:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.LOGIN_LOCKED_OUT,
            target_kind="staff_account",
            target_id=account.login,
            outcome=Outcome.DENIED,
        )
        raise AccountLocked(
            "ログインの失敗が続いたため、アカウントを一時的にロックしています。"
            "時間をおくか、管理者にロック解除を依頼してください。"
        )
    reason = ""
    step: int | None = None
    if not verify_password(account.password_hash, password):
        reason = "wrong password"
    else:
        secret = data_keyring().decrypt(account.totp_secret_encrypted, _TOTP_AAD + account.login)
        step = matching_totp_step(secret, totp_code, now)
        if step is None:
            reason = "wrong totp"
        elif step <= account.totp_last_step:
            reason = "replayed totp"
    if reason:
        account.failed_attempts += 1
        locked = account.failed_attempts >= settings.lockout_threshold
        if locked:
            account.locked_until = now + dt.timedelta(minutes=settings.lockout_minutes)
            account.failed_attempts = 0
        audit.record(
            session,
            actor=actor,
            action=AuditAction.LOGIN_FAILED,
            target_kind="staff_account",
            target_id=account.login,
            outcome=Outcome.FAILURE,
            detail=reason + ("; locked" if locked else ""),
        )
        session.flush()
        if reason == "replayed totp":
            raise InvalidCredentials(
                "このワンタイムパスワードは使用済みです。次のコードが表示されるまでお待ちください。",
                field="totp",
            )
        raise InvalidCredentials(GENERIC_LOGIN_FAILURE)
    assert step is not None
    account.totp_last_step = step
    account.failed_attempts = 0
    account.locked_until = None
    if account.totp_confirmed_at is None:
        account.totp_confirmed_at = now
    token, row = _issue(session, account_id=account.id, client_pk=None, now=now)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LOGIN_SUCCEEDED,
        target_kind="staff_account",
        target_id=account.login,
    )
    return IssuedToken(
        access_token=token,
        expires_at=row.expires_at,
        principal=_principal_for_account(session, account, row.id),
    )


def issue_client_token(
    session: Session, *, client_id: str, client_secret: str, now: dt.datetime | None = None
) -> IssuedToken:
    now = now or utcnow()
    client = repository.client_by_client_id(session, client_id)
    if client is None or not client.is_active or not verify_password(client.secret_hash, client_secret):
        if client is None:
            burn_password_check(client_secret)
        audit.record(
            session,
            actor=Actor(kind=ActorKind.AGENCY_CLIENT, actor_id=client_id[:64], organisation_code="unknown"),
            action=AuditAction.CLIENT_TOKEN_REFUSED,
            target_kind="agency_client",
            target_id=client_id[:64],
            outcome=Outcome.FAILURE,
        )
        raise InvalidCredentials("クライアントIDまたはシークレットが正しくありません。")
    org = repository.organisation_by_id(session, client.organisation_id)
    token, row = _issue(session, account_id=None, client_pk=client.id, now=now)
    audit.record(
        session,
        actor=Actor(kind=ActorKind.AGENCY_CLIENT, actor_id=client.client_id, organisation_code=org.code),
        action=AuditAction.CLIENT_TOKEN_ISSUED,
        target_kind="agency_client",
        target_id=client.client_id,
    )
    return IssuedToken(
        access_token=token,
        expires_at=row.expires_at,
        principal=Principal(
            kind=PrincipalKind.AGENCY_CLIENT,
            subject=client.client_id,
            organisation_code=org.code,
            organisation_kind=OrganisationKind(org.kind),
            roles=frozenset(),
            token_id=row.id,
        ),
    )


def authenticate(session: Session, token: str, *, now: dt.datetime | None = None) -> Principal:
    """The principal behind a bearer token; expired, revoked or unknown tokens are refused."""
    now = now or utcnow()
    found = repository.token_with_holder(session, _token_hash(token))
    if found is None or found.revoked_at is not None:
        raise InvalidCredentials("アクセストークンが無効です。再度ログインしてください。")
    if found.expires_at <= now:
        raise InvalidCredentials("アクセストークンの有効期限が切れています。再度ログインしてください。")
    if found.account_login is not None:
        if not found.account_active:
            raise InvalidCredentials("このアカウントは無効です。")
        return Principal(
            kind=PrincipalKind.STAFF,
            subject=found.account_login,
            organisation_code=found.organisation_code,
            organisation_kind=OrganisationKind(found.organisation_kind),
            roles=frozenset(Role(r) for r in found.roles),
            token_id=found.token_id,
        )
    assert found.client_id is not None
    if not found.client_active:
        raise InvalidCredentials("このクライアントは無効です。")
    return Principal(
        kind=PrincipalKind.AGENCY_CLIENT,
        subject=found.client_id,
        organisation_code=found.organisation_code,
        organisation_kind=OrganisationKind(found.organisation_kind),
        roles=frozenset(),
        token_id=found.token_id,
    )


def principal_for_login(session: Session, *, login: str) -> Principal:
    """The staff member a CLI command acts as, named by login (token_id 0: no token behind it).

    Whoever runs the CLI already holds the server and its keys, so no password is asked;
    naming the account makes the work attributable and subject to the same role rules as
    the API, which the caller checks on the returned principal.
    """
    account = repository.account_by_login(session, login)
    if account is None:
        raise NotFound(f"ログイン名 {login} のアカウントはありません。", field="login")
    principal = _principal_for_account(session, account, 0)
    if not account.is_active:
        # A deactivated account used at the console is worth a trace, as any refusal is.
        deny(session, principal=principal, target="cli", reason="inactive account")
        raise AccessDenied(f"アカウント {login} は無効化されているため操作できません。", field="login")
    return principal


def logout(session: Session, *, principal: Principal, now: dt.datetime | None = None) -> None:
    row = repository.token_by_id(session, principal.token_id)
    row.revoked_at = now or utcnow()
    audit.record(
        session,
        actor=actor_of(principal),
        action=AuditAction.LOGOUT,
        target_kind="api_token",
        target_id=str(principal.token_id),
    )
    session.flush()


def _account_in_scope(session: Session, actor: Principal | None, login: str) -> tuple[StaffAccount, str]:
    account = repository.account_by_login(session, login, for_update=True)
    if account is None:
        raise NotFound(f"ログイン名 {login} のアカウントはありません。", field="login")
    org = repository.organisation_by_id(session, account.organisation_id)
    _require_scope(actor, org.code)
    return account, org.code


def unlock(session: Session, *, actor: Principal | None, login: str) -> AccountView:
    account, code = _account_in_scope(session, actor, login)
    account.locked_until = None
    account.failed_attempts = 0
    audit.record(
        session,
        actor=_audit_actor(actor, code),
        action=AuditAction.ACCOUNT_UNLOCKED,
        target_kind="staff_account",
        target_id=login,
    )
    session.flush()
    return _account_view(session, account, code)


def reset_mfa(session: Session, *, actor: Principal | None, login: str) -> NewStaff:
    """A new TOTP secret (a lost phone); the old one stops working at once."""
    account, code = _account_in_scope(session, actor, login)
    secret = new_totp_secret()
    account.totp_secret_encrypted = data_keyring().encrypt(secret, _TOTP_AAD + login)
    account.totp_confirmed_at = None
    audit.record(
        session,
        actor=_audit_actor(actor, code),
        action=AuditAction.ACCOUNT_MFA_RESET,
        target_kind="staff_account",
        target_id=login,
    )
    session.flush()
    roles = tuple(Role(r) for r in repository.roles_of(session, account.id))
    return NewStaff(
        login=login,
        organisation_code=code,
        roles=roles,
        password="",
        totp_secret=secret,
        totp_uri=totp_uri(secret, login, code),
    )


def deactivate(session: Session, *, actor: Principal | None, login: str) -> AccountView:
    account, code = _account_in_scope(session, actor, login)
    account.is_active = False
    audit.record(
        session,
        actor=_audit_actor(actor, code),
        action=AuditAction.ACCOUNT_DEACTIVATED,
        target_kind="staff_account",
        target_id=login,
    )
    session.flush()
    return _account_view(session, account, code)


def _account_view(session: Session, account: StaffAccount, organisation_code: str) -> AccountView:
    return AccountView(
        login=account.login,
        display_name=account.display_name,
        organisation_code=organisation_code,
        roles=tuple(Role(r) for r in repository.roles_of(session, account.id)),
        is_active=account.is_active,
        mfa_enrolled=account.totp_confirmed_at is not None,
        locked_until=account.locked_until,
        failed_attempts=account.failed_attempts,
    )


def list_accounts(session: Session, *, actor: Principal | None, organisation_code: str) -> list[AccountView]:
    _require_scope(actor, organisation_code)
    org = _organisation(session, organisation_code)
    return [_account_view(session, a, org.code) for a in repository.accounts_of(session, org.id)]


def create_agency_client(
    session: Session, *, actor: Principal | None, organisation_code: str, name: str
) -> NewAgencyClient:
    org = _organisation(session, organisation_code)
    if org.kind != OrganisationKind.AGENCY:
        raise InvalidValue("APIクライアントは行政機関にのみ発行できます。", field="organisation_code")
    if actor is not None and Role.OPERATOR not in actor.roles:
        raise Forbidden("APIクライアントの発行は運用者のみが行えます。")
    client_id = new_client_id()
    secret = new_token()
    session.add(
        AgencyClient(
            organisation_id=org.id,
            client_id=client_id,
            name=name,
            secret_hash=hash_secret(secret),
            is_active=True,
            created_at=utcnow(),
        )
    )
    session.flush()
    audit.record(
        session,
        actor=_audit_actor(actor, "national"),
        action=AuditAction.AGENCY_CLIENT_CREATED,
        target_kind="agency_client",
        target_id=client_id,
        detail=f"organisation={org.code}",
    )
    return NewAgencyClient(client_id=client_id, client_secret=secret, organisation_code=org.code, name=name)


def deny(session: Session, *, principal: Principal, target: str, reason: str) -> AccessDenied:
    """Record a refusal and return the error to raise; the record survives the raise.

    Refusals are evidence too: an agency probing outside its rights leaves a trace.
    """
    audit.record(
        session,
        actor=actor_of(principal),
        action=AuditAction.ACCESS_DENIED,
        target_kind="route",
        target_id=target[:128],
        outcome=Outcome.DENIED,
        detail=reason,
    )
    session.flush()
    return AccessDenied("この操作を行う権限がありません。")
