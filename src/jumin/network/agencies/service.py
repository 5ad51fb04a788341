"""Use cases of the agency side. Services flush; the entry point commits.

Purpose binding: every agency request goes through :func:`authorize`, which names the
statutory task, checks that the client holds it and that the task allows what is asked
(個人番号 as a key, history, linkage, feed events). A refusal is audited with
``accounts.service.deny`` and raised as an ``AccessDenied``, which the unit of work commits.

Every read of personal data is audited in the same transaction (:func:`_hand_out`):
an interactive lookup writes one audit entry per person returned (target = the 住民票コード),
a bulk read (a batch chunk, a feed page) one entry with the count and a SHA-256 over the
sorted codes; either way each person also gets a row in the access log, which is what a
resident's access log lists. The 個人番号 never appears in an audit entry or a log.

機関別符号 (agency codes) are derived from the identity store's internal key
(``national_identities.id``), not from the 住民票コード or the 個人番号: the identity row
stays the same when the person moves, gets a new 住民票コード or a new 個人番号, so an
agency's code for a person never changes, and a leaked number or code reveals nothing
about it. The derivation key is ``keys.load_or_create_secret("agency-code")``.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import unicodedata
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, PrincipalKind, Role
from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction
from jumin.config import get_settings
from jumin.core.errors import AccessDenied, Conflict, InvalidValue, NotFound
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.db import utcnow
from jumin.keys import data_keyring, load_or_create_secret, lookup_hash
from jumin.network import service as codes_service
from jumin.network.agencies import repository, storage
from jumin.network.agencies.domain import (
    MIN_PURPOSE_LENGTH,
    WEBHOOK_SIGNATURE_HEADER,
    AccessSummary,
    BatchEncoding,
    BatchKind,
    BatchNotReady,
    BatchRow,
    BatchStatus,
    CandidateFacts,
    ExtractionFilter,
    ExtractionNotApproved,
    ExtractionStateConflict,
    ExtractionStatus,
    FeedEvent,
    FourFacts,
    IdentityField,
    MatchOutcome,
    OnError,
    ParquetUnavailable,
    PersonNotFound,
    RowError,
    ScoredCandidate,
    StatutoryTask,
    TaskCatalogue,
    TaskNotGranted,
    age_on,
    birth_dates_for_ages,
    change_kinds_for,
    check_agency_code,
    derive_agency_code,
    feed_event_of,
    normalize_address,
    outcome_of,
    rank,
    sign_webhook,
    webhook_backoff,
)
from jumin.network.agencies.models import (
    AgencyClientRecord,
    BatchJob,
    Extraction,
    FeedSubscription,
    TaskGrant,
    WebhookDelivery,
)
from jumin.network.identity.models import IdentityHistory, IdentityRecord

TASKS_FILE = "statutory_tasks.json"
AGENCY_CODE_KEY = "agency-code"
NUMBER_HASH_PURPOSE = "individual_number"  # as jumin.network.service and the replication engine
NATIONAL_CHAIN = "national"
# An interactive lookup returning at most this many persons audits each one separately.
PER_PERSON_AUDIT_LIMIT = 20
MAX_CANDIDATES = 20
# Rows fetched per candidate path of a four-facts query: a common reading on a common
# birth date stays far below this; a larger set means the query says too little.
CANDIDATE_FETCH_LIMIT = 5_000
# The feed shows history rows recorded at least this long ago: row ids are handed out
# when a row is inserted, not when its transaction commits, so a newer row can become
# visible after an older cursor moved past it. Replication transactions are short
# (one batch of at most 500 messages); the margin is generous. Tests pass ``now``.
FEED_SETTLE = dt.timedelta(seconds=5)
FEED_MAX_PAGE = 1_000
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # 1,000,000 rows of four facts fit with room to spare


# --- the catalogue --------------------------------------------------------------------------------


@cache
def catalogue() -> TaskCatalogue:
    """The statutory tasks from the data file shipped in this package, read once."""
    text = resources.files("jumin.network.agencies").joinpath(TASKS_FILE).read_text(encoding="utf-8")
    return TaskCatalogue.parse(text)


def list_tasks() -> tuple[StatutoryTask, ...]:
    return catalogue().all()


# --- places ---------------------------------------------------------------------------------------


@cache
def _place(lg_code: str) -> tuple[str, str]:
    """(prefecture name, municipality name) of a code; empty strings for an unknown code."""
    master = load_master()
    entry = master.find(lg_code)
    if entry is None:
        return "", ""
    prefecture = master.find(entry.prefecture_code)
    municipality = "" if entry.kind is MunicipalityKind.PREFECTURE else entry.name
    return (prefecture.name if prefecture else ""), municipality


def full_address(lg_code: str, line: str) -> str:
    """The address as an agency writes it: prefecture, municipality, then the line."""
    prefecture, municipality = _place(lg_code)
    return f"{prefecture}{municipality}{line}"


def municipality_name(lg_code: str) -> str:
    return _place(lg_code)[1]


# --- views ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonView:
    """One person's identity information, reduced to what the task may receive."""

    agency_code: str
    fields: tuple[str, ...]
    resident_code: str | None = None
    individual_number: str | None = None
    name: str | None = None
    name_kana: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None
    address: str | None = None
    address_lg_code: str | None = None
    status: str | None = None
    removal_reason: str | None = None
    change_kind: str | None = None
    changed_on: dt.date | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


@dataclass(frozen=True, slots=True)
class CandidateView:
    score: int
    exact: bool
    facts: dict[str, str]
    explanation: str
    person: PersonView


@dataclass(frozen=True, slots=True)
class GrantView:
    client_id: str
    task_code: str
    task_title: str
    granted_at: dt.datetime
    granted_by: str
    active: bool


@dataclass(frozen=True, slots=True)
class AgencyContext:
    """An authorized request: who asks, under which task, and (prefecture staff) for which area.

    ``area`` is the 2-digit prefecture code of a prefecture's staff: they see only the
    residents of their own prefecture (住基法 第30条の15 第1項). Agency clients have none.
    """

    principal: Principal
    task: StatutoryTask
    area: str | None = None
    target: str = ""

    @property
    def client_id(self) -> str:
        return self.principal.subject

    @property
    def organisation_code(self) -> str:
        return self.principal.organisation_code

    @property
    def actor(self) -> Actor:
        return accounts.actor_of(self.principal)


# A person's view is built from an ORM object (lookups) or from a plain row of
# repository.PERSON_COLUMNS (batches, where building ORM objects cost more than the query).
Source = IdentityRecord | IdentityHistory | Row[Any]


def _number_of(record: IdentityRecord | Row[Any]) -> str | None:
    """The person's 個人番号, opened from the store.

    The ciphertext is bound to the 住民票コード as associated data, as the national codes
    table does (jumin.network.service); a ciphertext copied to another person's row will
    not open.
    """
    if not record.individual_number_encrypted:
        return None
    try:
        return data_keyring().decrypt(record.individual_number_encrypted, associated=record.resident_code)
    except (InvalidTag, ValueError) as exc:
        raise RuntimeError("an individual number in the identity store does not open") from exc


@cache
def _returned_fields(task: StatutoryTask, history: bool) -> tuple[str, ...]:
    returned = [f.value for f in IdentityField if f in task.fields and f is not IdentityField.HISTORY]
    if history and IdentityField.INDIVIDUAL_NUMBER.value in returned:
        returned.remove(IdentityField.INDIVIDUAL_NUMBER.value)  # versions keep only its hash
    return tuple(returned)


def _person(
    task: StatutoryTask,
    agency_code: str,
    src: Source,
    *,
    individual_number: str | None = None,
) -> PersonView:
    allowed = task.fields

    def pick(f: IdentityField, value: Any) -> Any:
        return value if f in allowed else None

    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    if isinstance(src, IdentityHistory):
        history, changed_on, valid_from, valid_to = True, src.valid_from, src.valid_from, src.valid_to
    else:
        history, changed_on = False, src.changed_on
    address = IdentityField.ADDRESS in allowed
    return PersonView(
        agency_code=agency_code,
        fields=_returned_fields(task, history),
        resident_code=pick(IdentityField.RESIDENT_CODE, src.resident_code),
        individual_number=None if history else pick(IdentityField.INDIVIDUAL_NUMBER, individual_number),
        name=pick(IdentityField.NAME, src.name),
        name_kana=pick(IdentityField.NAME_KANA, src.name_kana),
        birth_date=pick(IdentityField.BIRTH_DATE, src.birth_date),
        sex=pick(IdentityField.SEX, src.sex),
        address=full_address(src.address_lg_code, src.address) if address else None,
        address_lg_code=src.address_lg_code if address else None,
        status=pick(IdentityField.STATUS, src.status),
        removal_reason=pick(IdentityField.STATUS, src.removal_reason),
        change_kind=pick(IdentityField.STATUS, src.change_kind),
        changed_on=pick(IdentityField.STATUS, changed_on),
        valid_from=valid_from,
        valid_to=valid_to,
    )


def _person_of_record(task: StatutoryTask, agency_code: str, record: IdentityRecord | Row[Any]) -> PersonView:
    number = _number_of(record) if task.allows(IdentityField.INDIVIDUAL_NUMBER) else None
    return _person(task, agency_code, record, individual_number=number)


# --- agency clients and their tasks ---------------------------------------------------------------


def _operator_actor(actor: Principal | None) -> Actor:
    return accounts.actor_of(actor) if actor is not None else Actor.system(NATIONAL_CHAIN)


def register_agency_client(
    session: Session,
    *,
    actor: Principal | None,
    organisation_code: str,
    name: str,
    organisation_name: str | None = None,
) -> accounts.NewAgencyClient:
    """A client of an agency on the national side (its accounts tables), ready for grants.

    ``organisation_name`` registers the agency first if it is new.
    """
    if organisation_name:
        accounts.ensure_organisation(
            session, code=organisation_code, kind=OrganisationKind.AGENCY, name=organisation_name, actor=actor
        )
    new = accounts.create_agency_client(session, actor=actor, organisation_code=organisation_code, name=name)
    repository.add(
        session,
        AgencyClientRecord(
            client_id=new.client_id,
            organisation_code=new.organisation_code,
            name=new.name,
            registered_at=utcnow(),
        ),
    )
    audit.record(
        session,
        actor=_operator_actor(actor),
        action=AuditAction.AGENCY_CLIENT_REGISTERED,
        target_kind="agency_client",
        target_id=new.client_id,
        detail=f"organisation={new.organisation_code}",
    )
    return new


def _client(session: Session, client_id: str) -> AgencyClientRecord:
    found = repository.client(session, client_id)
    if found is None:
        raise NotFound(
            f"クライアント {client_id} は全国側に登録された行政機関クライアントではありません。"
            "POST /network/v1/agency-clients または `jumin network create-client` で発行してください。",
            field="client_id",
        )
    return found


def _grant_view(g: TaskGrant) -> GrantView:
    task = catalogue().find(g.task_code)
    return GrantView(
        client_id=g.client_id,
        task_code=g.task_code,
        task_title=task.title if task else "",
        granted_at=g.granted_at,
        granted_by=g.granted_by,
        active=g.revoked_at is None,
    )


def grant_task(session: Session, *, actor: Principal | None, client_id: str, task_code: str) -> GrantView:
    """Register a statutory task for a client (the same grant twice changes nothing)."""
    task = catalogue().get(task_code)
    _client(session, client_id)
    now = utcnow()
    row = repository.grant(session, client_id, task.code)
    who = actor.subject if actor is not None else "system"
    if row is None:
        row = TaskGrant(client_id=client_id, task_code=task.code, granted_at=now, granted_by=who)
        try:
            repository.add(session, row)
        except IntegrityError as exc:  # the same grant made at the same moment
            raise Conflict("同じ登録が同時に行われました。再度お試しください。", field="task") from exc
    elif row.revoked_at is not None:
        row.revoked_at = None
        row.granted_at = now
        row.granted_by = who
        session.flush()
    else:
        return _grant_view(row)
    audit.record(
        session,
        actor=_operator_actor(actor),
        action=AuditAction.AGENCY_TASK_GRANTED,
        target_kind="agency_client",
        target_id=client_id,
        purpose=task.code,
    )
    return _grant_view(row)


def revoke_task(session: Session, *, actor: Principal | None, client_id: str, task_code: str) -> GrantView:
    _client(session, client_id)
    row = repository.grant(session, client_id, task_code)
    if row is None or row.revoked_at is not None:
        raise NotFound(
            f"クライアント {client_id} に別表事務「{task_code}」の登録はありません。", field="task"
        )
    row.revoked_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=_operator_actor(actor),
        action=AuditAction.AGENCY_TASK_REVOKED,
        target_kind="agency_client",
        target_id=client_id,
        purpose=task_code,
    )
    return _grant_view(row)


def client_tasks(session: Session, *, client_id: str) -> list[GrantView]:
    _client(session, client_id)
    return [_grant_view(g) for g in repository.grants_of(session, client_id)]


def client_principal(session: Session, *, client_id: str) -> Principal:
    """The principal a console command or a worker acts as for a client (no token behind it)."""
    record = _client(session, client_id)
    return Principal(
        kind=PrincipalKind.AGENCY_CLIENT,
        subject=record.client_id,
        organisation_code=record.organisation_code,
        organisation_kind=OrganisationKind.AGENCY,
        roles=frozenset(),
        token_id=0,
    )


def _holds(session: Session, client_id: str, task_code: str) -> bool:
    return repository.holds_grant(session, client_id, task_code)


_PREFECTURE_LOOKUP_ROLES = frozenset({Role.CLERK, Role.SUPERVISOR})


def _prefecture_staff_area(principal: Principal) -> str | None:
    """The prefecture whose residents this caller may see: staff of a prefecture only."""
    if (
        principal.kind is PrincipalKind.STAFF
        and principal.organisation_kind is OrganisationKind.PREFECTURE
        and principal.has_any(_PREFECTURE_LOOKUP_ROLES)
    ):
        return principal.organisation_code[:2]
    return None


def authorize(
    session: Session,
    *,
    principal: Principal,
    task_code: str,
    target: str,
    individual_number_key: bool = False,
    history: bool = False,
    linkage: bool = False,
    events: Iterable[FeedEvent] = (),
) -> AgencyContext:
    """The purpose check every agency request passes; a refusal is audited and kept.

    An agency client may act for the tasks registered for it. A prefecture's clerk or
    supervisor may act for the tasks the law gives the prefectural governor
    (``prefecture_use``), and only on the prefecture's own residents (``area``).
    """
    task = catalogue().find(task_code)
    problem: tuple[str, str, str] | None = None  # (audit reason, message, field)
    wanted_events = sorted(set(events))
    agency = principal.kind is PrincipalKind.AGENCY_CLIENT
    area = None if agency else _prefecture_staff_area(principal)
    if not agency and area is None:
        problem = (
            "not an agency client",
            "行政機関のAPIクライアント（照会は都道府県の職員も）のみが利用できます。",
            "task",
        )
    elif task is None:
        problem = ("unknown task", f"別表事務「{task_code}」は登録されていません。", "task")
    elif agency and not _holds(session, principal.subject, task.code):
        problem = (
            "task not granted",
            f"このクライアントは別表事務「{task.code}」（{task.title}）の登録がありません。",
            "task",
        )
    elif not agency and not task.prefecture_use:
        problem = (
            "task not performed by prefectures",
            f"別表事務「{task.code}」（{task.title}）は都道府県知事が行う事務"
            "（住民基本台帳法 第30条の15、別表第五）ではありません。",
            "task",
        )
    elif individual_number_key and not task.individual_number_key:
        problem = (
            "individual number key not allowed",
            f"別表事務「{task.code}」では個人番号による照会は認められていません。",
            "individual_number",
        )
    elif history and not task.allows(IdentityField.HISTORY):
        problem = (
            "history not allowed",
            f"別表事務「{task.code}」では本人確認情報の履歴は提供されません。",
            "task",
        )
    elif linkage and not task.allows_linkage:
        problem = (
            "linkage not allowed",
            f"別表事務「{task.code}」では機関別符号の変換（情報連携）は認められていません。",
            "task",
        )
    elif wanted_events and not set(wanted_events) <= task.feed_events:
        outside = ", ".join(e.value for e in wanted_events if e not in task.feed_events)
        problem = (
            "feed events not allowed",
            f"別表事務「{task.code}」では次の異動の通知は受けられません: {outside}",
            "events",
        )
    if problem is not None:
        reason, message, field = problem
        accounts.deny(session, principal=principal, target=f"{target} task={task_code[:40]}", reason=reason)
        raise TaskNotGranted(message, field=field)
    assert task is not None
    return AgencyContext(principal=principal, task=task, area=area, target=target)


class OutsideArea(AccessDenied):
    """Prefecture staff asked about a person who is not (or was not then) a resident of their area."""

    type_slug = "outside-area"
    title = "自都道府県の区域外の住民です"


def _require_area(
    session: Session,
    ctx: AgencyContext,
    prefecture_code: str,
    *,
    field: str = "resident_code",
    when: str = "",
) -> None:
    """Refuse, and audit the refusal, a person outside the caller's prefecture."""
    if ctx.area is None or prefecture_code == ctx.area:
        return
    accounts.deny(
        session,
        principal=ctx.principal,
        target=f"{ctx.target} task={ctx.task.code}",
        reason=f"person outside prefecture {ctx.area}",
    )
    raise OutsideArea(
        f"照会された者は{when}自都道府県の区域内の住民ではないため、本人確認情報を提供できません"
        "（住民基本台帳法 第30条の15）。",
        field=field,
    )


# --- handing data out: agency codes, audit entries, the access log --------------------------------


# The key never changes once created (every code handed out derives from it), so it is
# read from its file once per key folder instead of once per lookup.
_agency_code_keys: dict[Path, bytes] = {}


def _agency_code_key() -> bytes:
    key_dir = get_settings().key_dir
    key = _agency_code_keys.get(key_dir)
    if key is None:
        key = _agency_code_keys[key_dir] = load_or_create_secret(AGENCY_CODE_KEY, key_dir)
    return key


def _derive_codes(organisation_code: str, identity_ids: Iterable[int]) -> dict[int, str]:
    key = _agency_code_key()
    return {i: derive_agency_code(key, organisation_code, str(i)) for i in set(identity_ids)}


def _code_rows(organisation_code: str, codes: dict[int, str], now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {"organisation_code": organisation_code, "identity_id": i, "agency_code": c, "issued_at": now}
        for i, c in sorted(codes.items())
    ]


def agency_codes(session: Session, *, organisation_code: str, identity_ids: Iterable[int]) -> dict[int, str]:
    """The agency's codes for these persons, recorded so that the codes find them again."""
    codes = _derive_codes(organisation_code, identity_ids)
    repository.add_agency_codes(session, _code_rows(organisation_code, codes, utcnow()))
    return codes


@dataclass(frozen=True, slots=True)
class Handed:
    """A person whose data leaves the store: whom the access log must name."""

    identity_id: int
    resident_code: str
    prefecture_code: str


def _handed(src: Source) -> Handed:
    identity_id = src.identity_id if isinstance(src, IdentityHistory) else src.id
    return Handed(identity_id, src.resident_code, src.prefecture_code)


def record_access(
    session: Session,
    *,
    audit_actor: Actor,
    accessor: Actor,
    action: AuditAction,
    task_code: str,
    purpose: str,
    query_kind: str,
    people: Sequence[Handed],
    bulk_target: tuple[str, str] | None = None,
    detail: str = "",
    code_rows: Sequence[dict[str, Any]] = (),
) -> None:
    """Audit entries and access-log rows for persons whose data is handed out.

    ``bulk_target`` (kind, id) makes one summary entry; otherwise each person gets one
    (at most PER_PERSON_AUDIT_LIMIT; more is a bulk read by definition). ``code_rows``
    (agency codes to record) are written with the access-log rows.
    """
    now = utcnow()
    unique = list({p.identity_id: p for p in people}.values())
    extra = f" {detail}" if detail else ""
    rows: list[dict[str, Any]] = []

    def row(p: Handed, entry_id: int) -> dict[str, Any]:
        return {
            "identity_id": p.identity_id,
            "resident_code": p.resident_code,
            "prefecture_code": p.prefecture_code,
            "accessed_at": now,
            "organisation_code": accessor.organisation_code,
            "actor_kind": accessor.kind.value,
            "actor_id": accessor.actor_id,
            "task_code": task_code,
            "purpose": purpose[:500],
            "query_kind": query_kind,
            "audit_entry_id": entry_id,
        }

    if bulk_target is None and len(unique) <= PER_PERSON_AUDIT_LIMIT:
        if not unique:
            audit.record(
                session,
                actor=audit_actor,
                action=action,
                target_kind="query",
                target_id=query_kind,
                purpose=task_code,
                detail=f"query={query_kind} persons=0{extra}",
                now=now,
            )
        if len(unique) == 1 and len(code_rows) == 1 and code_rows[0]["identity_id"] == unique[0].identity_id:
            # The common lookup of one person: code, entry and access-log row in one statement.
            person, code_row = unique[0], code_rows[0]

            def write(entry_id: int) -> None:
                repository.add_codes_and_access_rows(session, [code_row], [row(person, entry_id)])

            audit.record(
                session,
                actor=audit_actor,
                action=action,
                target_kind="resident_code",
                target_id=person.resident_code,
                purpose=task_code,
                detail=f"query={query_kind}{extra}",
                now=now,
                attach=audit.Attachment(
                    sql=repository.ATTACHED_CODE_AND_ACCESS_ROW,
                    params=repository.attached_code_and_access_params(code_row, row(person, 0)),
                    write=write,
                ),
            )
            return
        for p in unique:
            entry = audit.record(
                session,
                actor=audit_actor,
                action=action,
                target_kind="resident_code",
                target_id=p.resident_code,
                purpose=task_code,
                detail=f"query={query_kind}{extra}",
                now=now,
            )
            rows.append(row(p, entry.id))
    else:
        summary = AccessSummary.of(p.resident_code for p in unique)
        kind, target_id = bulk_target or ("query", query_kind)
        entry = audit.record(
            session,
            actor=audit_actor,
            action=action,
            target_kind=kind,
            target_id=target_id,
            purpose=task_code,
            detail=f"query={query_kind} persons={summary.count} sha256={summary.digest}{extra}",
            now=now,
        )
        rows = [row(p, entry.id) for p in unique]
    repository.add_codes_and_access_rows(session, list(code_rows), rows)


def _hand_out(
    session: Session,
    ctx: AgencyContext,
    *,
    query_kind: str,
    sources: Sequence[Source],
    action: AuditAction = AuditAction.IDENTITY_LOOKUP,
    bulk_target: tuple[str, str] | None = None,
    detail: str = "",
) -> dict[int, str]:
    people = [_handed(s) for s in sources]
    codes = _derive_codes(ctx.organisation_code, [p.identity_id for p in people])
    record_access(
        session,
        audit_actor=ctx.actor,
        accessor=ctx.actor,
        action=action,
        task_code=ctx.task.code,
        purpose=ctx.task.code,
        query_kind=query_kind,
        people=people,
        bulk_target=bulk_target,
        detail=detail,
        code_rows=_code_rows(ctx.organisation_code, codes, utcnow()),
    )
    return codes


def _single(
    session: Session, ctx: AgencyContext, query_kind: str, records: Sequence[IdentityRecord]
) -> PersonView:
    if not records:
        _hand_out(session, ctx, query_kind=query_kind, sources=[])
        raise PersonNotFound("照会に該当する本人確認情報はありません。")
    record = records[0]
    _require_area(session, ctx, record.prefecture_code, field=query_kind)
    codes = _hand_out(session, ctx, query_kind=query_kind, sources=[record])
    return _person_of_record(ctx.task, codes[record.id], record)


# --- lookups --------------------------------------------------------------------------------------


def _records_for_codes(session: Session, codes: Sequence[str]) -> tuple[dict[str, IdentityRecord], set[str]]:
    """Current records by code; a code changed since still finds its person (second set)."""
    found = {r.resident_code: r for r in repository.identities_by_codes(session, codes)}
    missing = [c for c in codes if c not in found]
    changed: set[str] = set()
    if missing:
        past = repository.identity_ids_by_past_codes(session, missing)
        by_id = {r.id: r for r in repository.identities_by_ids(session, past.values())}
        for code, identity_id in past.items():
            if identity_id in by_id:
                found[code] = by_id[identity_id]
                changed.add(code)
    return found, changed


def lookup_by_resident_code(
    session: Session, *, ctx: AgencyContext, resident_code: ResidentCode
) -> PersonView:
    found, _ = _records_for_codes(session, [resident_code.value])
    record = found.get(resident_code.value)
    return _single(session, ctx, "resident_code", [record] if record else [])


def lookup_by_individual_number(
    session: Session, *, ctx: AgencyContext, number: IndividualNumber
) -> PersonView:
    """By 個人番号, for tasks that may use it as a key; found through its keyed hash only.

    A number changed since (番号変更) still names its holder (jumin.network.service).
    """
    record = repository.identity_by_number_hash(session, lookup_hash(number.value, NUMBER_HASH_PURPOSE))
    if record is None:
        holder = codes_service.find_by_individual_number(session, number=number)
        if holder is not None:
            found, _ = _records_for_codes(session, [holder.value])
            record = found.get(holder.value)
    return _single(session, ctx, "individual_number", [record] if record else [])


def lookup_by_agency_code(session: Session, *, ctx: AgencyContext, agency_code: str) -> PersonView:
    """By the agency's own 機関別符号; another agency's code finds nothing."""
    code = check_agency_code(agency_code)
    identity_id = repository.identity_for_agency_code(session, ctx.organisation_code, code)
    records = repository.identities_by_ids(session, [identity_id]) if identity_id is not None else []
    return _single(session, ctx, "agency_code", records)


@cache
def _place_keys(lg_code: str) -> tuple[str, str, str]:
    """(prefecture + municipality as written, its matching key, the prefecture's key)."""
    prefecture, municipality = _place(lg_code)
    return (
        f"{prefecture}{municipality}",
        normalize_address(f"{prefecture}{municipality}"),
        normalize_address(prefecture),
    )


def _candidate(row: Any) -> CandidateFacts:
    written, municipality_prefix, prefecture_name = _place_keys(row.address_lg_code)
    return CandidateFacts(
        identity_id=row.id,
        search_kana=row.search_kana,
        birth_date=row.birth_date,
        sex=row.sex,
        full_address=normalize_address(f"{written}{row.address}"),
        municipality_prefix=municipality_prefix,
        prefecture_name=prefecture_name,
    )


def _candidates(
    session: Session, queries: Sequence[FourFacts], *, exact_only: bool, area: str | None = None
) -> list[CandidateFacts]:
    """People worth scoring against ``queries``, fetched with a bounded number of queries.

    ``exact_only``: same reading and birth date (the batch's first pass). Otherwise the
    same reading on any date, and anyone of the same birth date and sex (the reading may
    be misspelt, or the name changed). ``area``: only residents of that prefecture.
    """
    cap = CANDIDATE_FETCH_LIMIT * max(len(queries), 1)
    if exact_only:
        pairs = [(q.name_kana, q.birth_date) for q in queries]
        rows = list(repository.candidates_by_reading_and_birth(session, pairs, limit=cap))
    else:
        rows = list(repository.candidates_by_reading(session, [q.name_kana for q in queries], limit=cap))
        rows += repository.candidates_by_birth_and_sex(
            session, [(q.birth_date, q.sex.value) for q in queries], limit=cap
        )
    return [_candidate(r) for r in rows if area is None or r.prefecture_code == area]


def lookup_by_four_facts(
    session: Session, *, ctx: AgencyContext, facts: FourFacts, limit: int = MAX_CANDIDATES
) -> list[CandidateView]:
    """Scored candidates for the four facts (4情報), best first; each score is explained.

    Prefecture staff are shown only residents of their prefecture: others are not candidates.
    """
    limit = max(1, min(limit, MAX_CANDIDATES))
    ranked = rank(facts, _candidates(session, [facts], exact_only=False, area=ctx.area), limit=limit)
    by_id = {r.id: r for r in repository.identities_by_ids(session, [s.identity_id for s in ranked])}
    records = [by_id[s.identity_id] for s in ranked if s.identity_id in by_id]
    codes = _hand_out(session, ctx, query_kind="four_facts", sources=records)
    return [
        CandidateView(
            score=s.score,
            exact=s.exact,
            facts=dict(s.facts),
            explanation=s.explain(),
            person=_person_of_record(ctx.task, codes[s.identity_id], by_id[s.identity_id]),
        )
        for s in ranked
        if s.identity_id in by_id
    ]


def _identity_id_for(session: Session, resident_code: ResidentCode) -> int | None:
    found, _ = _records_for_codes(session, [resident_code.value])
    record = found.get(resident_code.value)
    return record.id if record is not None else None


def identity_as_of(
    session: Session, *, ctx: AgencyContext, resident_code: ResidentCode, on: dt.date
) -> PersonView:
    """The person's identity information as it stood on ``on`` (from the history)."""
    identity_id = _identity_id_for(session, resident_code)
    version = repository.history_as_of(session, identity_id, on) if identity_id is not None else None
    if version is None:
        _hand_out(session, ctx, query_kind="as_of", sources=[])
        raise PersonNotFound(f"{on.isoformat()} 時点の本人確認情報はありません。", field="on")
    _require_area(session, ctx, version.prefecture_code, when=f"{on.isoformat()} 時点で")
    codes = _hand_out(session, ctx, query_kind="as_of", sources=[version])
    return _person(ctx.task, codes[version.identity_id], version)


def identity_history(
    session: Session, *, ctx: AgencyContext, resident_code: ResidentCode
) -> list[PersonView]:
    """Every version of the person's identity information, oldest first."""
    identity_id = _identity_id_for(session, resident_code)
    versions = list(repository.history_of(session, identity_id)) if identity_id is not None else []
    if not versions:
        _hand_out(session, ctx, query_kind="history", sources=[])
        raise PersonNotFound("照会に該当する本人確認情報はありません。")
    if ctx.area is not None:
        # Prefecture staff see the versions from while the person lived in their area.
        mine = [v for v in versions if v.prefecture_code == ctx.area]
        if not mine:
            _require_area(session, ctx, versions[-1].prefecture_code, when="いずれの時点でも")
        versions = mine
    codes = _hand_out(session, ctx, query_kind="history", sources=versions[:1])
    return [_person(ctx.task, codes[v.identity_id], v) for v in versions]


@dataclass(frozen=True, slots=True)
class TranslationView:
    organisation_code: str
    agency_code: str


def translate_agency_code(
    session: Session, *, ctx: AgencyContext, agency_code: str, target_organisation_code: str, target: str
) -> TranslationView:
    """The other agency's code for the person behind the caller's code (情報連携).

    Only for a task that allows linkage (``ctx`` was authorized with ``linkage=True``),
    and only towards an agency that itself holds a task allowing linkage. Audited.
    """
    code = check_agency_code(agency_code)
    if target_organisation_code == ctx.organisation_code:
        raise InvalidValue("変換先には他の機関を指定してください。", field="target_organisation_code")
    linkage_tasks = [t.code for t in catalogue().all() if t.allows_linkage]
    if not repository.organisation_holds_any(session, target_organisation_code, linkage_tasks):
        accounts.deny(
            session,
            principal=ctx.principal,
            target=f"{target} task={ctx.task.code}",
            reason=f"linkage target {target_organisation_code[:32]} holds no linkage task",
        )
        raise TaskNotGranted(
            f"機関 {target_organisation_code} は情報連携を行う事務の登録がないため、符号を変換できません。",
            field="target_organisation_code",
        )
    identity_id = repository.identity_for_agency_code(session, ctx.organisation_code, code)
    records = repository.identities_by_ids(session, [identity_id]) if identity_id is not None else []
    if not records:
        _hand_out(session, ctx, query_kind="linkage", sources=[], action=AuditAction.AGENCY_CODE_TRANSLATED)
        raise PersonNotFound("この機関別符号に該当する者はいません。", field="agency_code")
    record = records[0]
    theirs = agency_codes(session, organisation_code=target_organisation_code, identity_ids=[record.id])
    _hand_out(
        session,
        ctx,
        query_kind="linkage",
        sources=[record],
        action=AuditAction.AGENCY_CODE_TRANSLATED,
        detail=f"to={target_organisation_code}",
    )
    return TranslationView(organisation_code=target_organisation_code, agency_code=theirs[record.id])


# --- the change feed ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: str
    task_code: str
    events: tuple[str, ...]
    start_cursor: int
    webhook_url: str | None
    webhook_cursor: int
    webhook_failures: int
    webhook_next_attempt_at: dt.datetime | None
    webhook_secret: str | None = None  # shown once, when it is made


def _subscription_view(sub: FeedSubscription, secret: str | None = None) -> SubscriptionView:
    return SubscriptionView(
        id=sub.id,
        task_code=sub.task_code,
        events=tuple(e for e in sub.events.split(",") if e),
        start_cursor=sub.start_cursor,
        webhook_url=sub.webhook_url,
        webhook_cursor=sub.webhook_cursor,
        webhook_failures=sub.webhook_failures,
        webhook_next_attempt_at=sub.webhook_next_attempt_at,
        webhook_secret=secret,
    )


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def check_webhook_url(url: str, *, allow_loopback: bool) -> str:
    """https:// only; plain http only to this machine and only where the operator allows it.

    An agency must not make the hub post to addresses inside the national network.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.username or parts.password:
        raise InvalidValue("Webhook のURLに認証情報を含めないでください。", field="webhook_url")
    if parts.scheme == "https" and parts.hostname:
        return parts.geturl()
    if parts.scheme == "http" and allow_loopback and parts.hostname in _LOOPBACK:
        return parts.geturl()
    raise InvalidValue("Webhook のURLは https:// で指定してください。", field="webhook_url")


def _webhook_secret_aad(subscription_id: str) -> str:
    return f"webhook:{subscription_id}"


def webhook_secret(sub: FeedSubscription) -> str:
    assert sub.webhook_secret_encrypted is not None
    return data_keyring().decrypt(sub.webhook_secret_encrypted, associated=_webhook_secret_aad(sub.id))


def subscribe(
    session: Session,
    *,
    ctx: AgencyContext,
    events: Sequence[FeedEvent],
    webhook_url: str | None,
    rotate_secret: bool = False,
    allow_loopback: bool = False,
) -> SubscriptionView:
    """Follow change events of the task (``ctx`` authorized for ``events``); optionally by webhook.

    The feed starts at the newest change when the subscription is made. A webhook secret
    is made when a webhook is first set, when its URL changes, or on ``rotate_secret``;
    it is shown in that response only.
    """
    if not events:
        raise InvalidValue("受け取る異動の種類を1つ以上指定してください。", field="events")
    url = check_webhook_url(webhook_url, allow_loopback=allow_loopback) if webhook_url else None
    now = utcnow()
    sub = repository.subscription(session, ctx.client_id, ctx.task.code)
    new_secret: str | None = None
    if sub is None:
        start = repository.last_history_id(session)
        sub = FeedSubscription(
            id=uuid.uuid4().hex,
            client_id=ctx.client_id,
            organisation_code=ctx.organisation_code,
            task_code=ctx.task.code,
            events="",
            start_cursor=start,
            created_at=now,
            updated_at=now,
            webhook_cursor=start,
            webhook_failures=0,
        )
        try:
            repository.add(session, sub)
        except IntegrityError as exc:  # the same subscription made at the same moment
            raise Conflict("同じ購読が同時に登録されました。再度お試しください。", field="task") from exc
    if url is not None and (url != sub.webhook_url or rotate_secret or sub.webhook_secret_encrypted is None):
        new_secret = secrets.token_urlsafe(32)
        sub.webhook_secret_encrypted = data_keyring().encrypt(
            new_secret, associated=_webhook_secret_aad(sub.id)
        )
        if sub.webhook_url is None:
            sub.webhook_cursor = max(sub.webhook_cursor, sub.start_cursor)
        sub.webhook_failures = 0
        sub.webhook_next_attempt_at = None
    if url is None:
        sub.webhook_secret_encrypted = None
        sub.webhook_failures = 0
        sub.webhook_next_attempt_at = None
    sub.webhook_url = url
    sub.events = ",".join(sorted({e.value for e in events}))
    sub.updated_at = now
    session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.FEED_SUBSCRIBED,
        target_kind="feed_subscription",
        target_id=sub.id,
        purpose=ctx.task.code,
        detail=f"events={sub.events} webhook={'yes' if url else 'no'}",
    )
    return _subscription_view(sub, new_secret)


def _own_subscription(session: Session, ctx: AgencyContext) -> FeedSubscription:
    sub = repository.subscription(session, ctx.client_id, ctx.task.code)
    if sub is None:
        raise NotFound(
            f"別表事務「{ctx.task.code}」の異動通知の購読がありません。"
            f"PUT /network/v1/subscriptions/{ctx.task.code} で登録してください。",
            field="task",
        )
    return sub


def subscription(session: Session, *, ctx: AgencyContext) -> SubscriptionView:
    return _subscription_view(_own_subscription(session, ctx))


def unsubscribe(session: Session, *, ctx: AgencyContext) -> None:
    sub = _own_subscription(session, ctx)
    repository.delete_deliveries(session, sub.id)
    repository.remove(session, sub)
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.FEED_UNSUBSCRIBED,
        target_kind="feed_subscription",
        target_id=sub.id,
        purpose=ctx.task.code,
    )


@dataclass(frozen=True, slots=True)
class FeedItem:
    cursor: int
    event: str
    change_kind: str
    effective_on: dt.date
    recorded_at: dt.datetime
    person: PersonView


@dataclass(frozen=True, slots=True)
class FeedPage:
    subscription_id: str
    events: tuple[FeedItem, ...]
    next_cursor: int
    has_more: bool


def parse_cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidValue("カーソルは前回の応答の next_cursor をそのまま指定してください。", field="after")
    return int(raw)


def feed_events(
    session: Session,
    *,
    ctx: AgencyContext,
    sub: FeedSubscription,
    after: int | None,
    limit: int,
    now: dt.datetime | None = None,
    channel: str = "pull",
) -> FeedPage:
    """A page of change events after the cursor, for persons the agency holds a code for.

    An agency learns of changes to the people it already deals with (it holds their
    機関別符号 from a lookup or a batch), never of everyone's. The task is re-checked:
    events it no longer allows are left out even if once subscribed.
    """
    limit = max(1, min(limit, FEED_MAX_PAGE))
    allowed = {FeedEvent(e) for e in sub.events.split(",") if e} & ctx.task.feed_events
    start = max(sub.start_cursor, after if after is not None else sub.start_cursor)
    horizon = (now or utcnow()) - FEED_SETTLE
    kinds = change_kinds_for(allowed)
    fetched = (
        repository.feed_page(
            session, organisation_code=ctx.organisation_code, change_kinds=kinds, after=start, limit=limit
        )
        if kinds
        else []
    )
    # The page ends before the first row still settling, not merely without it: ids and
    # record times need not agree (two batches applied at once), and a cursor moved past
    # a settling row would skip it for ever.
    settling = next((i for i, r in enumerate(fetched) if r[0].recorded_at > horizon), None)
    rows = fetched if settling is None else fetched[:settling]
    history = [r[0] for r in rows]
    if history:
        record_access(
            session,
            audit_actor=ctx.actor,
            accessor=ctx.actor,
            action=AuditAction.FEED_READ,
            task_code=ctx.task.code,
            purpose=ctx.task.code,
            query_kind="feed",
            people=[_handed(h) for h in history],
            bulk_target=("feed_subscription", sub.id),
            detail=f"channel={channel} after={start} last={history[-1].id}",
        )
    items = tuple(
        FeedItem(
            cursor=h.id,
            event=str(feed_event_of(h.change_kind)),
            change_kind=h.change_kind,
            effective_on=h.valid_from,
            recorded_at=h.recorded_at,
            person=_person(ctx.task, code, h),
        )
        for h, code in ((r[0], r[1]) for r in rows)
    )
    return FeedPage(
        subscription_id=sub.id,
        events=items,
        next_cursor=history[-1].id if history else start,
        has_more=settling is None and len(rows) == limit,
    )


def read_feed(
    session: Session, *, ctx: AgencyContext, after: int | None, limit: int, now: dt.datetime | None = None
) -> FeedPage:
    return feed_events(
        session, ctx=ctx, sub=_own_subscription(session, ctx), after=after, limit=limit, now=now
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def person_json(p: PersonView) -> dict[str, Any]:
    data = {k: _json_value(getattr(p, k)) for k in PersonView.__slots__}
    data["fields"] = list(p.fields)
    return data


def feed_item_json(item: FeedItem) -> dict[str, Any]:
    """One event as the pull API and the webhook both send it (one shape, two channels)."""
    return {
        "cursor": str(item.cursor),
        "event": item.event,
        "change_kind": item.change_kind,
        "effective_on": item.effective_on.isoformat(),
        "recorded_at": _json_value(item.recorded_at),
        "person": person_json(item.person),
    }


# --- the access log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessView:
    id: int
    accessed_at: dt.datetime
    organisation_code: str
    actor_kind: str
    actor_id: str
    task_code: str
    task_title: str
    purpose: str
    query_kind: str


def resident_access_log(
    session: Session,
    *,
    viewer: Principal | Actor,
    resident_code: ResidentCode,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AccessView]:
    """Who received this person's identity information, for which task, when (newest first).

    Covers the codes the person held before (a changed 住民票コード). Reading it is audited,
    under the viewer: staff (a Principal) or the resident themselves (an Actor, the portal).
    """
    found, _ = _records_for_codes(session, [resident_code.value])
    ids = [found[resident_code.value].id] if resident_code.value in found else []
    rows = (
        repository.access_log(session, ids, limit=max(1, min(limit, 1000)), before_id=before_id)
        if ids
        else []
    )
    audit.record(
        session,
        actor=viewer if isinstance(viewer, Actor) else accounts.actor_of(viewer),
        action=AuditAction.ACCESS_LOG_VIEWED,
        target_kind="resident_code",
        target_id=resident_code.value,
        detail=f"rows={len(rows)}",
    )
    views = []
    for r in rows:
        task = catalogue().find(r.task_code)
        title = (
            task.title
            if task
            else ("都道府県による基準日抽出" if r.task_code.startswith("extraction:") else "")
        )
        views.append(
            AccessView(
                id=r.id,
                accessed_at=r.accessed_at,
                organisation_code=r.organisation_code,
                actor_kind=r.actor_kind,
                actor_id=r.actor_id,
                task_code=r.task_code,
                task_title=title,
                purpose=r.purpose,
                query_kind=r.query_kind,
            )
        )
    return views


# --- batches --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowErrorView:
    line: int
    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class BatchView:
    id: str
    task_code: str
    kind: str
    on_error: str
    encoding: str
    status: str
    upload_bytes: int
    total_rows: int
    processed_rows: int
    bad_rows: int
    matched: int
    ambiguous: int
    partial: int
    not_found: int
    result_sha256: str | None
    failure: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    errors: tuple[RowErrorView, ...] = ()


def _batch_view(job: BatchJob, errors: Sequence[RowErrorView] = ()) -> BatchView:
    return BatchView(
        id=job.id,
        task_code=job.task_code,
        kind=job.kind,
        on_error=job.on_error,
        encoding=job.encoding,
        status=job.status,
        upload_bytes=job.upload_bytes,
        total_rows=job.total_rows,
        processed_rows=job.processed_rows,
        bad_rows=job.bad_rows,
        matched=job.matched,
        ambiguous=job.ambiguous,
        partial=job.partial,
        not_found=job.not_found,
        result_sha256=job.result_sha256,
        failure=job.failure,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        errors=tuple(errors),
    )


ENCODINGS = {BatchEncoding.UTF8.value: "utf-8-sig", BatchEncoding.SHIFT_JIS.value: "cp932"}


def batch_dir(job_id: str) -> Path:
    return storage.files_root() / "batches" / job_id


def batch_input(job_id: str) -> tuple[Path, str]:
    return batch_dir(job_id) / "input.sealed", f"batch-input:{job_id}"


def batch_result_file(job_id: str) -> tuple[Path, str]:
    return batch_dir(job_id) / "result.sealed", f"batch-result:{job_id}"


@dataclass(frozen=True, slots=True)
class BatchUpload:
    """An uploaded CSV, sealed on disk, not yet a job."""

    job_id: str
    size: int
    sha256: str


def receive_upload(body: Iterable[bytes]) -> BatchUpload:
    """Store an uploaded CSV sealed, as it arrives (memory stays flat), outside any transaction.

    The caller authorizes first and holds no transaction open meanwhile: an upload can
    take minutes, and on SQLite an open transaction holds the national write lock.
    Checking the rows is the worker's job (jobs.run_batch).
    """
    job_id = uuid.uuid4().hex
    path, purpose = batch_input(job_id)
    writer = storage.SealedWriter(path, purpose=purpose)
    try:
        for chunk in body:
            if writer.size + len(chunk) > MAX_UPLOAD_BYTES:
                raise InvalidValue(
                    f"CSVが大きすぎます（上限 {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB）。"
                    "分割して送ってください。",
                    field="body",
                )
            writer.write(chunk)
        if writer.size == 0:
            raise InvalidValue("CSVが空です。見出し行とデータ行を送ってください。", field="body")
        writer.close()
    except BaseException:
        writer.abort()
        storage.remove_tree(batch_dir(job_id))
        raise
    return BatchUpload(job_id=job_id, size=writer.size, sha256=writer.sha256)


def discard_upload(upload: BatchUpload) -> None:
    storage.remove_tree(batch_dir(upload.job_id))


def create_batch(
    session: Session,
    *,
    ctx: AgencyContext,
    upload: BatchUpload,
    kind: BatchKind,
    on_error: OnError,
    encoding: BatchEncoding,
) -> BatchView:
    """Queue a received upload for verification under the authorized task."""
    job = BatchJob(
        id=upload.job_id,
        client_id=ctx.client_id,
        organisation_code=ctx.organisation_code,
        task_code=ctx.task.code,
        kind=kind.value,
        on_error=on_error.value,
        encoding=encoding.value,
        status=BatchStatus.QUEUED.value,
        upload_bytes=upload.size,
        total_rows=0,
        bad_rows=0,
        processed_rows=0,
        matched=0,
        ambiguous=0,
        partial=0,
        not_found=0,
        created_at=utcnow(),
    )
    repository.add(session, job)
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.BATCH_SUBMITTED,
        target_kind="batch",
        target_id=job.id,
        purpose=ctx.task.code,
        detail=f"kind={kind.value} on_error={on_error.value} bytes={upload.size} sha256={upload.sha256}",
    )
    return _batch_view(job)


def _own_batch(session: Session, ctx: AgencyContext, job_id: str) -> BatchJob:
    job = repository.batch(session, job_id) if len(job_id) <= 32 else None
    if job is None or job.client_id != ctx.client_id or job.task_code != ctx.task.code:
        # Another client's batch is "not found": its existence is not the caller's business.
        raise NotFound(f"一括照合 {job_id[:32]} はありません。", field="batch_id")
    return job


def batch_status(session: Session, *, ctx: AgencyContext, job_id: str, errors: int = 100) -> BatchView:
    job = _own_batch(session, ctx, job_id)
    rows = repository.row_errors(session, job.id, after_line=0, limit=errors) if errors else []
    return _batch_view(job, [RowErrorView(e.line, e.field, e.reason) for e in rows])


def batch_errors(
    session: Session, *, ctx: AgencyContext, job_id: str, after_line: int = 0, limit: int = 1000
) -> list[RowErrorView]:
    job = _own_batch(session, ctx, job_id)
    rows = repository.row_errors(session, job.id, after_line=after_line, limit=max(1, min(limit, 10_000)))
    return [RowErrorView(e.line, e.field, e.reason) for e in rows]


def list_batches(session: Session, *, ctx: AgencyContext, limit: int = 50) -> list[BatchView]:
    return [_batch_view(j) for j in repository.batches_of(session, ctx.client_id, ctx.task.code, limit=limit)]


def batch_result(session: Session, *, ctx: AgencyContext, job_id: str) -> tuple[Iterator[bytes], BatchView]:
    """The result CSV, streamed from its sealed file; handing it over is audited."""
    job = _own_batch(session, ctx, job_id)
    if job.status != BatchStatus.DONE:
        raise BatchNotReady(
            f"一括照合 {job.id} は状態「{job.status}」のため結果はありません"
            "（queued/validating/running は処理中、rejected/failed は結果なし）。",
            field="batch_id",
        )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.BATCH_RESULT_DOWNLOADED,
        target_kind="batch",
        target_id=job.id,
        purpose=ctx.task.code,
        detail=f"sha256={job.result_sha256}",
    )
    path, purpose = batch_result_file(job.id)
    return storage.read_sealed(path, purpose=purpose), _batch_view(job)


# --- prefecture extraction ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtractionView:
    id: str
    prefecture_code: str
    organisation_code: str
    requested_by: str
    requested_at: dt.datetime
    reference_date: dt.date
    lg_codes: tuple[str, ...]
    min_age: int | None
    max_age: int | None
    purpose: str
    status: str
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    finished_at: dt.datetime | None
    row_count: int | None
    csv_sha256: str | None
    parquet_sha256: str | None


def _extraction_view(e: Extraction) -> ExtractionView:
    return ExtractionView(
        id=e.id,
        prefecture_code=e.prefecture_code,
        organisation_code=e.organisation_code,
        requested_by=e.requested_by,
        requested_at=e.requested_at,
        reference_date=e.reference_date,
        lg_codes=tuple(c for c in e.lg_codes.split(",") if c),
        min_age=e.min_age,
        max_age=e.max_age,
        purpose=e.purpose,
        status=e.status,
        decided_by=e.decided_by,
        decided_at=e.decided_at,
        decision_note=e.decision_note,
        finished_at=e.finished_at,
        row_count=e.row_count,
        csv_sha256=e.csv_sha256,
        parquet_sha256=e.parquet_sha256,
    )


def _japan_today() -> dt.date:
    return (utcnow() + dt.timedelta(hours=9)).date()


def _refuse(
    session: Session, principal: Principal, target: str, reason: str, message: str, field: str
) -> AccessDenied:
    accounts.deny(session, principal=principal, target=target, reason=reason)
    return AccessDenied(message, field=field)


def _prefecture_of(principal: Principal) -> str | None:
    if principal.organisation_kind is not OrganisationKind.PREFECTURE:
        return None
    return principal.organisation_code[:2]


def _municipalities_in(
    session: Session, principal: Principal, prefecture_code: str, lg_codes: Sequence[str], target: str
) -> tuple[str, ...]:
    """The register-keeping codes the filter covers; a code outside the prefecture is refused."""
    master = load_master()
    chosen: set[str] = set()
    for raw in lg_codes:
        code = LgCode.parse(raw, field="lg_codes")
        entry = master.get(code)
        if entry.prefecture_code[:2] != prefecture_code:
            raise _refuse(
                session,
                principal,
                target,
                f"municipality {code.value} outside prefecture {prefecture_code}",
                f"{entry.name}（{code.value}）は自都道府県の区域外のため指定できません。",
                "lg_codes",
            )
        if entry.kind is MunicipalityKind.PREFECTURE:
            raise InvalidValue(
                "市区町村のコードを指定してください（都道府県全体なら省略）。", field="lg_codes"
            )
        chosen.add(code.value)
        # A designated city's residents are registered by its wards.
        chosen.update(w.code for w in master.wards_of(code.value))
    return tuple(sorted(chosen))


def request_extraction(
    session: Session,
    *,
    principal: Principal,
    reference_date: dt.date,
    lg_codes: Sequence[str],
    min_age: int | None,
    max_age: int | None,
    purpose: str,
    target: str,
) -> ExtractionView:
    """A prefecture clerk asks for the prefecture's residents on a date; an operator decides."""
    prefecture = _prefecture_of(principal)
    if prefecture is None:
        raise _refuse(
            session,
            principal,
            target,
            "not prefecture staff",
            "都道府県の職員のみが依頼できます。",
            "organisation",
        )
    ExtractionFilter(reference_date=reference_date, min_age=min_age, max_age=max_age).check(_japan_today())
    stated = unicodedata.normalize("NFC", purpose).strip()
    if len(stated) < MIN_PURPOSE_LENGTH:
        raise InvalidValue(
            f"利用目的を{MIN_PURPOSE_LENGTH}文字以上で具体的に記載してください。", field="purpose"
        )
    if len(stated) > 500:
        raise InvalidValue("利用目的は500文字以内で記載してください。", field="purpose")
    codes = _municipalities_in(session, principal, prefecture, lg_codes, target)
    now = utcnow()
    row = Extraction(
        id=uuid.uuid4().hex,
        prefecture_code=prefecture,
        organisation_code=principal.organisation_code,
        requested_by=principal.subject,
        requested_at=now,
        reference_date=reference_date,
        lg_codes=",".join(codes),
        min_age=min_age,
        max_age=max_age,
        purpose=stated,
        status=ExtractionStatus.REQUESTED.value,
    )
    repository.add(session, row)
    audit.record(
        session,
        actor=accounts.actor_of(principal),
        action=AuditAction.EXTRACTION_REQUESTED,
        target_kind="extraction",
        target_id=row.id,
        purpose=stated[:256],
        detail=(
            f"prefecture={prefecture} reference_date={reference_date.isoformat()} "
            f"municipalities={len(codes) or 'all'} min_age={min_age} max_age={max_age}"
        ),
    )
    return _extraction_view(row)


def _extraction_for(session: Session, principal: Principal, extraction_id: str, target: str) -> Extraction:
    row = repository.extraction(session, extraction_id) if len(extraction_id) <= 32 else None
    if row is None:
        raise NotFound(f"抽出依頼 {extraction_id[:32]} はありません。", field="extraction_id")
    prefecture = _prefecture_of(principal)
    if principal.organisation_kind is OrganisationKind.NATIONAL:
        return row
    if prefecture != row.prefecture_code:
        raise _refuse(
            session,
            principal,
            target,
            f"extraction of prefecture {row.prefecture_code}",
            "他の都道府県の抽出依頼は参照できません。",
            "extraction_id",
        )
    return row


def extraction(session: Session, *, principal: Principal, extraction_id: str, target: str) -> ExtractionView:
    return _extraction_view(_extraction_for(session, principal, extraction_id, target))


def list_extractions(session: Session, *, principal: Principal, limit: int = 100) -> list[ExtractionView]:
    prefecture = _prefecture_of(principal)
    if prefecture is None and principal.organisation_kind is not OrganisationKind.NATIONAL:
        return []
    rows = repository.extractions(session, prefecture_code=prefecture, limit=max(1, min(limit, 500)))
    return [_extraction_view(r) for r in rows]


def decide_extraction(
    session: Session, *, principal: Principal, extraction_id: str, approve: bool, note: str, target: str
) -> ExtractionView:
    """A national operator approves or rejects a requested extraction (once)."""
    if Role.OPERATOR not in principal.roles or principal.organisation_kind is not OrganisationKind.NATIONAL:
        raise _refuse(
            session,
            principal,
            target,
            "not a national operator",
            "抽出の承認は全国センターの運用者が行います。",
            "role",
        )
    row = _extraction_for(session, principal, extraction_id, target)
    row = repository.extraction(session, row.id, for_update=True) or row
    if row.status != ExtractionStatus.REQUESTED:
        raise ExtractionStateConflict(
            f"抽出依頼 {row.id} は状態「{row.status}」のため承認・却下できません。", field="extraction_id"
        )
    row.status = (ExtractionStatus.APPROVED if approve else ExtractionStatus.REJECTED).value
    row.decided_by = principal.subject
    row.decided_at = utcnow()
    row.decision_note = note.strip()[:500] or None
    session.flush()
    audit.record(
        session,
        actor=accounts.actor_of(principal),
        action=AuditAction.EXTRACTION_APPROVED if approve else AuditAction.EXTRACTION_REJECTED,
        target_kind="extraction",
        target_id=row.id,
        purpose=row.purpose[:256],
        detail=f"prefecture={row.prefecture_code} requested_by={row.requested_by}",
    )
    return _extraction_view(row)


EXTRACTION_FORMATS = ("csv", "parquet")


def extraction_file_path(extraction_id: str, fmt: str) -> tuple[Path, str]:
    return (
        storage.files_root() / "extractions" / extraction_id / f"result.{fmt}.sealed",
        f"extraction-{fmt}:{extraction_id}",
    )


def extraction_file(
    session: Session, *, principal: Principal, extraction_id: str, fmt: str, target: str
) -> tuple[Iterator[bytes], ExtractionView]:
    """The approved extraction's file for the requesting prefecture; refused without approval."""
    if fmt not in EXTRACTION_FORMATS:
        raise InvalidValue("形式は csv または parquet を指定してください。", field="format")
    row = _extraction_for(session, principal, extraction_id, target)
    if principal.organisation_kind is not OrganisationKind.PREFECTURE:
        raise _refuse(
            session,
            principal,
            target,
            "extraction file for non-prefecture staff",
            "抽出結果を受け取れるのは依頼した都道府県の職員のみです。",
            "extraction_id",
        )
    if row.status in (ExtractionStatus.REQUESTED, ExtractionStatus.REJECTED):
        accounts.deny(session, principal=principal, target=target, reason=f"extraction {row.status}")
        raise ExtractionNotApproved(
            f"抽出依頼 {row.id} は承認されていません（状態: {row.status}）。全国センターの承認が必要です。",
            field="extraction_id",
        )
    if row.status != ExtractionStatus.READY:
        raise BatchNotReady(
            f"抽出依頼 {row.id} の結果は作成中です（状態: {row.status}）。", field="extraction_id"
        )
    digest = row.csv_sha256 if fmt == "csv" else row.parquet_sha256
    if digest is None:
        raise ParquetUnavailable(
            "この抽出は Parquet 形式で作成されていません（サーバーに pyarrow がありません）。"
            "CSV を利用してください。",
            field="format",
        )
    audit.record(
        session,
        actor=accounts.actor_of(principal),
        action=AuditAction.EXTRACTION_DOWNLOADED,
        target_kind="extraction",
        target_id=row.id,
        purpose=row.purpose[:256],
        detail=f"format={fmt} rows={row.row_count} sha256={digest}",
    )
    path, purpose = extraction_file_path(row.id, fmt)
    return storage.read_sealed(path, purpose=purpose), _extraction_view(row)


def extraction_actor(row: Extraction) -> Actor:
    """Who the access log names for an extraction: the requesting prefecture and clerk."""
    return Actor(kind=ActorKind.STAFF, actor_id=row.requested_by, organisation_code=row.organisation_code)


# --- the batch worker's steps (each runs in its own unit of work; see jobs.py) --------------------


@dataclass(frozen=True, slots=True)
class BatchSpec:
    id: str
    client_id: str
    task_code: str
    kind: BatchKind
    on_error: OnError
    encoding: str


@dataclass(frozen=True, slots=True)
class RowResult:
    line: int
    ref: str
    match: MatchOutcome
    score: int | None = None
    candidates: int = 0
    note: str = ""
    person: PersonView | None = None


def claim_batch(session: Session, *, job_id: str, stale: bool = False) -> BatchSpec | None:
    """Take a queued job (or, with ``stale``, one a dead worker left half done); None if taken."""
    statuses = [BatchStatus.QUEUED.value]
    if stale:
        statuses += [BatchStatus.VALIDATING.value, BatchStatus.RUNNING.value]
    if not repository.claim_batch(
        session, job_id, from_status=statuses, to_status=BatchStatus.VALIDATING.value, now=utcnow()
    ):
        return None
    job = repository.batch(session, job_id)
    assert job is not None
    repository.clear_row_errors(session, job_id)
    job.total_rows = job.bad_rows = job.processed_rows = 0
    job.matched = job.ambiguous = job.partial = job.not_found = 0
    session.flush()
    return BatchSpec(
        id=job.id,
        client_id=job.client_id,
        task_code=job.task_code,
        kind=BatchKind(job.kind),
        on_error=OnError(job.on_error),
        encoding=job.encoding,
    )


def pending_batches(session: Session, *, stale: bool = False) -> list[str]:
    statuses = [BatchStatus.QUEUED.value]
    if stale:
        statuses += [BatchStatus.VALIDATING.value, BatchStatus.RUNNING.value]
    return repository.batches_in(session, statuses)


def record_row_errors(session: Session, *, job_id: str, errors: Sequence[RowError]) -> None:
    repository.add_row_errors(session, job_id, ((e.line, e.field, e.reason) for e in errors))


def finish_validation(session: Session, *, spec: BatchSpec, total: int, bad: int) -> BatchStatus:
    """After the first pass: reject the whole file (reject_all with bad rows) or go on."""
    job = repository.batch(session, spec.id)
    assert job is not None
    job.total_rows = total
    job.bad_rows = bad
    if bad and spec.on_error is OnError.REJECT_ALL:
        job.status = BatchStatus.REJECTED.value
        job.finished_at = utcnow()
    else:
        job.status = BatchStatus.RUNNING.value
    session.flush()
    if job.status == BatchStatus.REJECTED:
        _batch_finished(session, job)
    return BatchStatus(job.status)


def fail_batch(session: Session, *, job_id: str, reason: str) -> None:
    """A job that cannot go on; ``reason`` is shown to the agency, so it never quotes row data."""
    job = repository.batch(session, job_id)
    if job is None:
        return
    job.status = BatchStatus.FAILED.value
    job.failure = reason[:2000]
    job.finished_at = utcnow()
    session.flush()
    _batch_finished(session, job)


def _batch_finished(session: Session, job: BatchJob) -> None:
    audit.record(
        session,
        actor=Actor(
            kind=ActorKind.AGENCY_CLIENT, actor_id=job.client_id, organisation_code=job.organisation_code
        ),
        action=AuditAction.BATCH_FINISHED,
        target_kind="batch",
        target_id=job.id,
        purpose=job.task_code,
        detail=(
            f"status={job.status} rows={job.total_rows} bad={job.bad_rows} matched={job.matched} "
            f"ambiguous={job.ambiguous} partial={job.partial} not_found={job.not_found}"
        ),
    )


def finish_batch(session: Session, *, job_id: str, result_sha256: str) -> None:
    job = repository.batch(session, job_id)
    assert job is not None
    job.status = BatchStatus.DONE.value
    job.result_sha256 = result_sha256
    job.finished_at = utcnow()
    session.flush()
    _batch_finished(session, job)


def _batch_context(session: Session, spec: BatchSpec) -> AgencyContext:
    """The job acts for its client under its task, as long as the client still holds it."""
    principal = client_principal(session, client_id=spec.client_id)
    task = catalogue().get(spec.task_code)
    if not _holds(session, spec.client_id, spec.task_code):
        accounts.deny(
            session, principal=principal, target=f"batch {spec.id}", reason="task no longer granted"
        )
        raise TaskNotGranted(
            f"別表事務「{spec.task_code}」の登録が取り消されたため、一括照合を中止しました。"
        )
    return AgencyContext(principal=principal, task=task)


def _rank_from(facts: FourFacts, pool: Iterable[CandidateFacts]) -> list[ScoredCandidate]:
    return rank(facts, pool, limit=MAX_CANDIDATES)


def verify_batch_chunk(
    session: Session, *, spec: BatchSpec, rows: Sequence[BatchRow | RowError]
) -> list[RowResult]:
    """Verify one chunk with a bounded number of queries; hand out and audit the matched persons.

    By code: one query for the chunk (and one for codes changed since). By four facts:
    one query for every (reading, birth date) of the chunk; rows without a candidate get
    a second, broader pass (same reading on any date; same birth date and sex).
    """
    ctx = _batch_context(session, spec)
    valid = [r for r in rows if isinstance(r, BatchRow)]
    results: dict[int, RowResult] = {}
    matched: dict[int, IdentityRecord | Row[Any]] = {}
    if spec.kind is BatchKind.RESIDENT_CODE:
        found, changed = _records_for_codes(session, [r.resident_code for r in valid if r.resident_code])
        for r in valid:
            record = found.get(r.resident_code or "")
            if record is None:
                results[r.line] = RowResult(r.line, r.ref, MatchOutcome.NOT_FOUND)
            else:
                matched[r.line] = record
                note = "code_changed" if r.resident_code in changed else ""
                results[r.line] = RowResult(r.line, r.ref, MatchOutcome.MATCHED, note=note)
    else:
        queries = [r for r in valid if r.facts is not None]
        exact_pool: dict[tuple[str, dt.date], list[CandidateFacts]] = {}
        for c in _candidates(session, [r.facts for r in queries if r.facts], exact_only=True):
            exact_pool.setdefault((c.search_kana, c.birth_date), []).append(c)
        misses: list[BatchRow] = []
        ranked_by_line: dict[int, list[ScoredCandidate]] = {}
        for r in queries:
            assert r.facts is not None
            ranked = _rank_from(r.facts, exact_pool.get((r.facts.name_kana, r.facts.birth_date), []))
            if ranked:
                ranked_by_line[r.line] = ranked
            else:
                misses.append(r)
        if misses:
            by_reading: dict[str, list[CandidateFacts]] = {}
            by_birth: dict[tuple[dt.date, str], list[CandidateFacts]] = {}
            for c in _candidates(session, [r.facts for r in misses if r.facts], exact_only=False):
                by_reading.setdefault(c.search_kana, []).append(c)
                by_birth.setdefault((c.birth_date, c.sex), []).append(c)
            for r in misses:
                assert r.facts is not None
                pool = by_reading.get(r.facts.name_kana, []) + by_birth.get(
                    (r.facts.birth_date, r.facts.sex.value), []
                )
                ranked_by_line[r.line] = _rank_from(r.facts, pool)
        exact_ids = {s.identity_id for ranked in ranked_by_line.values() for s in ranked if s.exact}
        records = {x.id: x for x in repository.identity_rows_by_ids(session, exact_ids)}
        for r in queries:
            ranked = ranked_by_line.get(r.line, [])
            outcome = outcome_of(ranked)
            best = ranked[0] if ranked else None
            if outcome is MatchOutcome.MATCHED and best is not None and best.identity_id in records:
                matched[r.line] = records[best.identity_id]
            results[r.line] = RowResult(
                r.line,
                r.ref,
                outcome,
                score=best.score if best else None,
                candidates=sum(1 for s in ranked if s.exact)
                if outcome is MatchOutcome.AMBIGUOUS
                else len(ranked),
                note=best.explain() if outcome is MatchOutcome.PARTIAL and best else "",
            )
    lines = [r.line for r in rows]
    codes = _hand_out(
        session,
        ctx,
        query_kind=f"batch_{spec.kind.value}",
        sources=list(matched.values()),
        action=AuditAction.BATCH_VERIFIED,
        bulk_target=("batch", spec.id),
        detail=f"lines={min(lines)}-{max(lines)}" if lines else "",
    )
    for line, person in matched.items():
        results[line] = replace(results[line], person=_person_of_record(ctx.task, codes[person.id], person))
    for bad in rows:
        if isinstance(bad, RowError):
            results[bad.line] = RowResult(bad.line, bad.ref, MatchOutcome.INVALID, note=bad.reason)
    job = repository.batch(session, spec.id)
    assert job is not None
    ordered = [results[line] for line in sorted(results)]
    job.processed_rows += len(ordered)
    job.matched += sum(1 for x in ordered if x.match is MatchOutcome.MATCHED)
    job.ambiguous += sum(1 for x in ordered if x.match is MatchOutcome.AMBIGUOUS)
    job.partial += sum(1 for x in ordered if x.match is MatchOutcome.PARTIAL)
    job.not_found += sum(1 for x in ordered if x.match is MatchOutcome.NOT_FOUND)
    session.flush()
    return ordered


_RESULT_FIELDS: tuple[tuple[IdentityField, tuple[str, ...]], ...] = (
    (IdentityField.RESIDENT_CODE, ("resident_code",)),
    (IdentityField.INDIVIDUAL_NUMBER, ("individual_number",)),
    (IdentityField.NAME, ("name",)),
    (IdentityField.NAME_KANA, ("name_kana",)),
    (IdentityField.BIRTH_DATE, ("birth_date",)),
    (IdentityField.SEX, ("sex",)),
    (IdentityField.ADDRESS, ("address", "address_lg_code")),
    (IdentityField.STATUS, ("status", "removal_reason")),
)
RESULT_BASE_COLUMNS = ("line", "ref", "match", "score", "candidates", "note", "agency_code")


def batch_result_columns(task_code: str) -> list[str]:
    """The result CSV's columns: the fixed ones, then only what the task may receive."""
    task = catalogue().get(task_code)
    columns = list(RESULT_BASE_COLUMNS)
    for f, names in _RESULT_FIELDS:
        if task.allows(f):
            columns.extend(names)
    return columns


def result_values(columns: Sequence[str], result: RowResult) -> list[str]:
    base = {
        "line": str(result.line),
        "ref": result.ref,
        "match": result.match.value,
        "score": "" if result.score is None else str(result.score),
        "candidates": str(result.candidates) if result.candidates else "",
        "note": result.note,
        "agency_code": result.person.agency_code if result.person else "",
    }
    p = result.person
    # As person_json gives them, without building the whole dict for every row.
    return [base[c] if c in base else str((_json_value(getattr(p, c)) if p else None) or "") for c in columns]


# --- the extraction worker's steps ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtractionSpec:
    id: str
    prefecture_code: str
    reference_date: dt.date
    lg_codes: tuple[str, ...]
    min_age: int | None
    max_age: int | None


EXTRACTION_COLUMNS = (
    "prefecture_code",
    "lg_code",
    "municipality",
    "resident_code",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "age",
    "address",
)


def claim_extraction(session: Session, *, extraction_id: str, stale: bool = False) -> ExtractionSpec | None:
    row = repository.extraction(session, extraction_id, for_update=True)
    allowed = {ExtractionStatus.APPROVED.value} | ({ExtractionStatus.PRODUCING.value} if stale else set())
    if row is None or row.status not in allowed:
        return None
    row.status = ExtractionStatus.PRODUCING.value
    session.flush()
    return ExtractionSpec(
        id=row.id,
        prefecture_code=row.prefecture_code,
        reference_date=row.reference_date,
        lg_codes=tuple(c for c in row.lg_codes.split(",") if c),
        min_age=row.min_age,
        max_age=row.max_age,
    )


def pending_extractions(session: Session, *, stale: bool = False) -> list[str]:
    statuses = [ExtractionStatus.APPROVED.value] + ([ExtractionStatus.PRODUCING.value] if stale else [])
    return repository.extractions_in(session, statuses)


def _extraction_task_code(extraction_id: str) -> str:
    return f"extraction:{extraction_id}"


# Rows per page of an extraction: one Parquet row group, read from the database at once.
EXTRACTION_PAGE = 50_000
ExtractionColumns = dict[str, list[Any]]


def extraction_rows(session: Session, *, spec: ExtractionSpec) -> Iterator[ExtractionColumns]:
    """The residents on the reference date, page by page, by column (EXTRACTION_COLUMNS).

    The persons are fixed first (the age range as a birth-date range, inside the query);
    :func:`finish_extraction` writes their access-log rows from that same set in the same
    transaction, tied to its audit entry.
    """
    born_from, born_until = birth_dates_for_ages(spec.reference_date, spec.min_age, spec.max_age)
    repository.stage_residents_on(
        session,
        prefecture_code=spec.prefecture_code,
        on=spec.reference_date,
        lg_codes=spec.lg_codes,
        born_from=born_from,
        born_until=born_until,
    )
    ages: dict[dt.date, int] = {}
    places: dict[str, tuple[str, str]] = {}

    def age_of(birth: dt.date) -> int:
        age = age_on(birth, spec.reference_date)
        if (spec.min_age is not None and age < spec.min_age) or (
            spec.max_age is not None and age > spec.max_age
        ):
            # The access log would name someone the files leave out.
            raise RuntimeError("the birth-date range of an extraction disagrees with its age range")
        ages[birth] = age
        return age

    def place(lg_code: str) -> tuple[str, str]:
        found = places[lg_code] = _place(lg_code)
        return found

    for page in repository.staged_residents(session, page=EXTRACTION_PAGE):
        _, prefectures, lg_codes, codes, names, kana, births, sexes, address_lgs, lines = (
            list(c) for c in zip(*page, strict=True)
        )
        yield {
            "prefecture_code": prefectures,
            "lg_code": lg_codes,
            "municipality": [(places.get(c) or place(c))[1] for c in lg_codes],
            "resident_code": codes,
            "name": names,
            "name_kana": [k or "" for k in kana],
            "birth_date": births,
            "sex": sexes,
            "age": [ages[b] if b in ages else age_of(b) for b in births],
            "address": [
                "".join(places.get(c) or place(c)) + line for c, line in zip(address_lgs, lines, strict=True)
            ],
        }


def finish_extraction(
    session: Session, *, spec: ExtractionSpec, row_count: int, csv_sha256: str, parquet_sha256: str | None
) -> ExtractionView:
    row = repository.extraction(session, spec.id)
    assert row is not None
    row.status = ExtractionStatus.READY.value
    row.row_count = row_count
    row.csv_sha256 = csv_sha256
    row.parquet_sha256 = parquet_sha256
    row.finished_at = utcnow()
    session.flush()
    entry = audit.record(
        session,
        actor=Actor.system(NATIONAL_CHAIN),
        action=AuditAction.EXTRACTION_PRODUCED,
        target_kind="extraction",
        target_id=row.id,
        purpose=row.purpose[:256],
        detail=(
            f"prefecture={row.prefecture_code} requested_by={row.organisation_code}/{row.requested_by} "
            f"reference_date={row.reference_date.isoformat()} rows={row_count} "
            f"csv_sha256={csv_sha256} parquet_sha256={parquet_sha256 or '-'}"
        ),
    )
    accessor = extraction_actor(row)
    logged = repository.log_staged_residents(
        session,
        {
            "accessed_at": utcnow(),
            "organisation_code": accessor.organisation_code,
            "actor_kind": accessor.kind.value,
            "actor_id": accessor.actor_id,
            "task_code": _extraction_task_code(spec.id),
            "purpose": row.purpose[:500],
            "query_kind": "prefecture_extraction",
            "audit_entry_id": entry.id,
        },
    )
    if logged != row_count:
        raise RuntimeError("an extraction's access log does not name every person in its files")
    return _extraction_view(row)


def fail_extraction(session: Session, *, extraction_id: str, reason: str) -> None:
    row = repository.extraction(session, extraction_id)
    if row is None:
        return
    row.status = ExtractionStatus.FAILED.value
    row.failure = reason[:2000]
    row.finished_at = utcnow()
    session.flush()


# --- the webhook worker's steps -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    delivery_pk: int
    subscription_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    last_cursor: int
    events: int


WEBHOOK_PAGE = 100


def due_webhooks(session: Session, *, now: dt.datetime) -> list[str]:
    return repository.due_webhooks(session, now)


def prepare_webhook(
    session: Session, *, subscription_id: str, now: dt.datetime, limit: int = WEBHOOK_PAGE
) -> PreparedDelivery | None:
    """The next page of events for a webhook, signed, and the attempt recorded; None if nothing to send.

    Reading the page is audited like a pull (channel=webhook): the data leaves with the
    attempt, whether or not the receiver acknowledges it.
    """
    sub = repository.subscription_by_id(session, subscription_id, for_update=True)
    if sub is None or sub.webhook_url is None or sub.webhook_secret_encrypted is None:
        return None
    if not _holds(session, sub.client_id, sub.task_code):
        return None  # the client lost the task: nothing goes out until it is granted again
    ctx = AgencyContext(
        principal=client_principal(session, client_id=sub.client_id), task=catalogue().get(sub.task_code)
    )
    page = feed_events(
        session,
        ctx=ctx,
        sub=sub,
        after=sub.webhook_cursor,
        limit=limit,
        now=now,
        channel="webhook",
    )
    if not page.events:
        return None
    delivery_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "delivery_id": delivery_id,
            "subscription_id": sub.id,
            "task": sub.task_code,
            "events": [feed_item_json(e) for e in page.events],
            "next_cursor": str(page.next_cursor),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    timestamp = int(now.timestamp())
    delivery = WebhookDelivery(
        subscription_id=sub.id,
        delivery_id=delivery_id,
        attempt=sub.webhook_failures + 1,
        attempted_at=now,
        after_cursor=sub.webhook_cursor,
        last_cursor=page.next_cursor,
        events=len(page.events),
        outcome="pending",
    )
    repository.add(session, delivery)
    return PreparedDelivery(
        delivery_pk=delivery.id,
        subscription_id=sub.id,
        url=sub.webhook_url,
        body=body,
        headers={
            "Content-Type": "application/json",
            WEBHOOK_SIGNATURE_HEADER: sign_webhook(webhook_secret(sub), timestamp, body),
            "Jumin-Delivery": delivery_id,
            "Jumin-Subscription": sub.id,
            "User-Agent": "jumin-webhook/1",
        },
        last_cursor=page.next_cursor,
        events=len(page.events),
    )


def finish_webhook(
    session: Session,
    *,
    prepared: PreparedDelivery,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    now: dt.datetime,
) -> None:
    """Advance the webhook's cursor on success; otherwise schedule the retry with back-off."""
    sub = repository.subscription_by_id(session, prepared.subscription_id, for_update=True)
    delivery = session.get(WebhookDelivery, prepared.delivery_pk)
    if sub is None or delivery is None:
        return
    delivery.status_code = status_code
    delivery.error = (error or "")[:300] or None
    if delivered:
        delivery.outcome = "delivered"
        sub.webhook_cursor = max(sub.webhook_cursor, prepared.last_cursor)
        sub.webhook_failures = 0
        sub.webhook_next_attempt_at = None
    else:
        delivery.outcome = "failed"
        sub.webhook_failures += 1
        sub.webhook_next_attempt_at = now + webhook_backoff(sub.webhook_failures)
        delivery.next_attempt_at = sub.webhook_next_attempt_at
    session.flush()


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery_id: str
    attempt: int
    attempted_at: dt.datetime
    after_cursor: int
    last_cursor: int
    events: int
    outcome: str
    status_code: int | None
    error: str | None
    next_attempt_at: dt.datetime | None


def webhook_deliveries(session: Session, *, ctx: AgencyContext, limit: int = 50) -> list[DeliveryView]:
    sub = _own_subscription(session, ctx)
    return [
        DeliveryView(
            delivery_id=d.delivery_id,
            attempt=d.attempt,
            attempted_at=d.attempted_at,
            after_cursor=d.after_cursor,
            last_cursor=d.last_cursor,
            events=d.events,
            outcome=d.outcome,
            status_code=d.status_code,
            error=d.error,
            next_attempt_at=d.next_attempt_at,
        )
        for d in repository.deliveries(session, sub.id, limit=max(1, min(limit, 500)))
    ]
