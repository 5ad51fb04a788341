"""`jumin registry`: every 異動 and every query of the register, as the API offers them.

One command per entry of ``service.EVENT_COMMANDS``, generated in a loop, so that a new
event kind gets its command without an edit here; its body is the API's JSON body,
parsed by the same request model. Who acts is a staff account named by ``--clerk``: its
organisation is the municipality (never a flag), and its roles must allow the command
exactly as the API's routes require. Output is one JSON object per line.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.audit import service as audit
from jumin.audit.domain import AuditAction
from jumin.cli_support import command_unit, fail, print_json
from jumin.core.errors import AccessDenied, DomainError, Forbidden
from jumin.core.wareki import parse_date
from jumin.network_client import default_network_client
from jumin.registry import service
from jumin.registry.domain import EVENT_LABELS, EventOutcome
from jumin.registry.presenters import event_item, history_item, outbox_response, record_response
from jumin.registry.schemas import (
    EventResponse,
    HouseholdResponse,
    SearchResponse,
)

app = typer.Typer(help="住民基本台帳: 異動の記録と照会", no_args_is_help=True)

_EVENTS_PANEL = "異動の記録"
_QUERIES_PANEL = "照会"

# The API's access rules (registry/api.py: Clerk, Supervisor, Reader), role for role.
_CLERKS = frozenset({Role.CLERK, Role.SUPERVISOR})
_SUPERVISORS = frozenset({Role.SUPERVISOR})
_READERS = frozenset({Role.CLERK, Role.SUPERVISOR, Role.AUDITOR})
_ROLE_NAMES = {Role.CLERK: "窓口職員", Role.SUPERVISOR: "監督職員", Role.AUDITOR: "監査担当"}

# The API's default purpose (registry.api.DEFAULT_PURPOSE); a test keeps the two equal.
DEFAULT_PURPOSE = "住民基本台帳事務"
_RESIDENT_CODE = re.compile(r"[0-9]{11}")

ClerkOption = Annotated[
    str, typer.Option("--clerk", help="操作する職員のログイン名 (所属団体の住民基本台帳を操作します)")
]
FileOption = Annotated[
    str | None, typer.Option("--file", "-f", help="本文 (JSON) のファイル。- で標準入力から読む")
]
JsonOption = Annotated[str | None, typer.Option("--json", help="本文 (JSON) をそのまま指定する")]
OnOption = Annotated[
    str | None, typer.Option("--on", help="この日の記載内容 (ISO または 和暦。省略時は本日)")
]
KnownAtOption = Annotated[
    str | None,
    typer.Option("--known-at", help="この時点で台帳に記録されていた内容 (例: 2026-04-01T09:00:00+09:00)"),
]
PurposeOption = Annotated[str, typer.Option("--purpose", help="利用目的 (監査ログに記録)")]


# ---------------------------------------------------------------------------
# Who acts


def _acting(session: Session, login: str, roles: frozenset[Role], command: str, what: str) -> Principal:
    """The named account, refused (and the refusal audited) unless the API would let it in."""
    principal = accounts.principal_for_login(session, login=login)
    target = f"cli registry {command}"
    if not principal.has_any(roles):
        # deny() writes the audit entry; the message it returns is generic, while someone
        # at the console is better served by the role they lack.
        accounts.deny(session, principal=principal, target=target, reason="missing role")
        needed = "・".join(_ROLE_NAMES[r] for r in sorted(roles))
        raise AccessDenied(
            f"{login} には「{what}」の権限がありません ({needed}のロールが必要です)。", field="clerk"
        )
    if principal.organisation_kind is not OrganisationKind.MUNICIPALITY:
        accounts.deny(session, principal=principal, target=target, reason="organisation kind")
        raise AccessDenied(
            f"{login} は市区町村の職員ではないため、住民基本台帳を操作できません。", field="clerk"
        )
    return principal


def _context(principal: Principal) -> service.RegistryContext:
    return service.RegistryContext(
        actor=accounts.actor_of(principal),
        lg_code=principal.organisation_code,
        network=default_network_client(),
    )


# ---------------------------------------------------------------------------
# Input: the JSON body and the options, checked before the database is opened so that
# bad input changes nothing.


def _refuse(error: DomainError) -> NoReturn:
    where = f" ({error.field})" if error.field else ""
    fail(f"{error.title}{where}: {error.detail}")


def _read_body(file: str | None, inline: str | None) -> str:
    if (file is None) == (inline is None):
        fail("本文 (JSON) を --file か --json のどちらか一方で指定してください。")
    if inline is not None:
        return inline
    assert file is not None
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"ファイル {file} は UTF-8 のテキストではありません。")
    except OSError as exc:
        fail(f"ファイル {file} を読めません: {exc.strerror}")


_DATE_HINT = "日付 (2025-04-01 または 令和7年4月1日) で指定してください"
_MESSAGES = {
    "missing": "必須の項目です",
    "extra_forbidden": "この項目は指定できません",
    "model_type": "オブジェクト ({...}) で指定してください",
    "model_attributes_type": "オブジェクト ({...}) で指定してください",
    "dict_type": "オブジェクト ({...}) で指定してください",
    "list_type": "配列 ([...]) で指定してください",
    "string_type": "文字列で指定してください",
    "int_type": "整数で指定してください",
    "int_parsing": "整数で指定してください",
    "int_from_float": "整数で指定してください",
    "bool_type": "true または false で指定してください",
    "bool_parsing": "true または false で指定してください",
    "date_type": _DATE_HINT,
    "date_parsing": _DATE_HINT,
    "date_from_datetime_parsing": _DATE_HINT,
    "date_from_datetime_inexact": _DATE_HINT,
    "string_pattern_mismatch": "形式が正しくありません",
}


def _message(error: ErrorDetails) -> str:
    """Pydantic's English message in the words a clerk reads; our own validators are Japanese."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "json_invalid":
        return f"JSON として読めません ({ctx.get('error', error['msg'])})"
    if kind == "enum":
        return f"次のいずれかを指定してください: {ctx.get('expected', '')}"
    if kind == "string_too_short":
        return (
            "空にできません"
            if ctx.get("min_length") == 1
            else f"{ctx.get('min_length')}文字以上にしてください"
        )
    if kind == "string_too_long":
        return f"{ctx.get('max_length')}文字以内にしてください"
    if kind == "too_short":
        return f"{ctx.get('min_length')}件以上指定してください"
    if kind == "too_long":
        return f"{ctx.get('max_length')}件以内にしてください"
    if kind in ("greater_than_equal", "greater_than"):
        limit = ctx.get("ge", ctx.get("gt"))
        return f"{limit}{'以上' if kind == 'greater_than_equal' else 'より大きい値'}で指定してください"
    return _MESSAGES.get(kind, error["msg"])


def _field_of(loc: tuple[int | str, ...]) -> str:
    # The same dotted path the API's 422 names (members.0.resident_code).
    return ".".join(str(p) for p in loc) or "本文"


def _parse(command: service.EventCommand, text: str) -> Any:
    try:
        return command.request_type.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors()
        lines = "\n".join(f"  {_field_of(tuple(e['loc']))}: {_message(e)}" for e in errors)
        fail(f"入力形式が正しくありません ({len(errors)}件)。何も記録していません。\n{lines}")


def _date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return parse_date(value, field=field)
    except DomainError as exc:
        _refuse(exc)


def _moment(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"known_at 「{value}」は日時として読めません (例: 2026-04-01T09:00:00+09:00)。")
    if moment.tzinfo is None:
        # As in the API: a moment without its zone is nine hours ambiguous.
        fail("known_at にはタイムゾーンを含めてください (例: 2026-04-01T09:00:00+09:00)。")
    return moment


def _purpose(value: str) -> str:
    if not 1 <= len(value) <= 200:
        fail("利用目的 (--purpose) は1〜200文字で指定してください。")
    return value


# ---------------------------------------------------------------------------
# Events: one command per entry of EVENT_COMMANDS


def _event_json(outcome: EventOutcome) -> dict[str, Any]:
    return EventResponse(
        event_id=outcome.event_id,
        kind=outcome.kind.value,
        label=EVENT_LABELS[outcome.kind],
        late=outcome.late,
        person_ids=list(outcome.person_ids),
        household_ids=list(outcome.household_ids),
    ).model_dump(mode="json")


def _add_event_command(command: service.EventCommand) -> None:
    roles = _SUPERVISORS if command.supervisor_only else _CLERKS

    def record_event(clerk: ClerkOption, file: FileOption = None, inline: JsonOption = None) -> None:
        request = _parse(command, _read_body(file, inline))
        with command_unit() as session:
            principal = _acting(session, clerk, roles, command.slug, command.label)
            outcome = service.run_command(
                session, ctx=_context(principal), slug=command.slug, request=request
            )
        print_json(_event_json(outcome))

    record_event.__name__ = "record_" + command.slug.replace("-", "_")
    who = "監督職員のみ" if command.supervisor_only else "窓口職員・監督職員"
    app.command(
        command.slug,
        help=(
            f"{command.label}を記録する ({who})。\n\n"
            f"本文は POST /registry/events/{command.slug} と同じ {command.request_type.__name__} の JSON。"
        ),
        short_help=f"{command.label}を記録する" + (" (監督職員のみ)" if command.supervisor_only else ""),
        rich_help_panel=_EVENTS_PANEL,
    )(record_event)


for _command in service.EVENT_COMMANDS:
    _add_event_command(_command)


# ---------------------------------------------------------------------------
# Queries. Records are presented by the API's own record_response, imported where
# used: loading FastAPI would slow every other `jumin` command down.


def _number_shown(session: Session, principal: Principal, person_id: int, purpose: str) -> None:
    """The full 個人番号 only to clerks and supervisors, and every showing audited (as the API)."""
    if not principal.roles & _CLERKS:
        raise Forbidden("個人番号を表示する権限がありません。", field="show_individual_number")
    audit.record(
        session,
        actor=accounts.actor_of(principal),
        action=AuditAction.REGISTRY_INDIVIDUAL_NUMBER_SHOWN,
        target_kind="person",
        target_id=str(person_id),
        purpose=purpose,
    )


@app.command("show", rich_help_panel=_QUERIES_PANEL)
def show(
    person_id: Annotated[int, typer.Argument(help="住民ID (person_id)")],
    clerk: ClerkOption,
    on: OnOption = None,
    known_at: KnownAtOption = None,
    show_individual_number: Annotated[
        bool, typer.Option("--show-individual-number", help="個人番号を全桁表示する (目的を記録)")
    ] = False,
    purpose: PurposeOption = DEFAULT_PURPOSE,
) -> None:
    """住民票を表示する (任意の日付時点・任意の記録時点)。"""
    day, moment, why = _date(on, "on"), _moment(known_at), _purpose(purpose)
    with command_unit() as session:
        principal = _acting(session, clerk, _READERS, "show", "住民票の表示")
        view = service.get_record(
            session, ctx=_context(principal), person_id=person_id, on=day, known_at=moment, purpose=why
        )
        if show_individual_number:
            _number_shown(session, principal, person_id, why)
    print_json(record_response(view, show_individual_number=show_individual_number).model_dump(mode="json"))


@app.command("history", rich_help_panel=_QUERIES_PANEL)
def history(
    person_id: Annotated[int, typer.Argument(help="住民ID (person_id)")],
    clerk: ClerkOption,
    purpose: PurposeOption = DEFAULT_PURPOSE,
) -> None:
    """住民票の全ての版を1行ずつ表示する (訂正前の記録を含む)。"""
    why = _purpose(purpose)
    with command_unit() as session:
        principal = _acting(session, clerk, _READERS, "history", "住民票の履歴の表示")
        rows = service.history(session, ctx=_context(principal), person_id=person_id, purpose=why)
        items = [history_item(v) for v in rows]
    for item in items:
        print_json(item.model_dump(mode="json"))


@app.command("events", rich_help_panel=_QUERIES_PANEL)
def events(
    person_id: Annotated[int, typer.Argument(help="住民ID (person_id)")],
    clerk: ClerkOption,
    purpose: PurposeOption = DEFAULT_PURPOSE,
) -> None:
    """住民の異動を記録順に1行ずつ表示する。"""
    why = _purpose(purpose)
    with command_unit() as session:
        principal = _acting(session, clerk, _READERS, "events", "異動の一覧の表示")
        found = service.events_of(session, ctx=_context(principal), person_id=person_id, purpose=why)
        items = [event_item(e) for e in found]
    for item in items:
        print_json(item.model_dump(mode="json"))


@app.command("household", rich_help_panel=_QUERIES_PANEL)
def household(
    household_id: Annotated[int, typer.Argument(help="世帯ID (household_id)")],
    clerk: ClerkOption,
    on: OnOption = None,
    known_at: KnownAtOption = None,
    purpose: PurposeOption = DEFAULT_PURPOSE,
) -> None:
    """世帯とその世帯員を表示する (任意の日付時点)。"""
    day, moment, why = _date(on, "on"), _moment(known_at), _purpose(purpose)
    with command_unit() as session:
        principal = _acting(session, clerk, _READERS, "household", "世帯の表示")
        view = service.get_household(
            session, ctx=_context(principal), household_id=household_id, on=day, known_at=moment, purpose=why
        )
    print_json(
        HouseholdResponse(
            household_id=view.household_id,
            household_no=view.household_no,
            version=view.version,
            on=view.on,
            head_person_id=view.head_person_id,
            members=[record_response(m, show_individual_number=False) for m in view.members],
        ).model_dump(mode="json")
    )


@app.command("search", rich_help_panel=_QUERIES_PANEL)
def search(
    clerk: ClerkOption,
    kana: Annotated[str | None, typer.Option("--kana", help="カナ氏名 (前方一致・通称を含む)")] = None,
    resident_code: Annotated[str | None, typer.Option("--resident-code", help="住民票コード (11桁)")] = None,
    birth_date: Annotated[str | None, typer.Option("--birth-date", help="生年月日 (ISO または 和暦)")] = None,
    address: Annotated[str | None, typer.Option("--address", help="住所 (前方一致)")] = None,
    include_removed: Annotated[bool, typer.Option("--include-removed", help="除票も探す")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="最大件数")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="読み飛ばす件数")] = 0,
    purpose: PurposeOption = DEFAULT_PURPOSE,
) -> None:
    """住民を検索する (カナ氏名・住民票コード・生年月日・住所)。結果は API と同じ形の1行。"""
    if kana is not None and len(kana) > 100:
        fail("カナ氏名 (--kana) は100文字以内で指定してください。")
    if resident_code is not None and not _RESIDENT_CODE.fullmatch(resident_code):
        fail("住民票コード (--resident-code) は11桁の数字で指定してください。")
    if address is not None and len(address) > 200:
        fail("住所 (--address) は200文字以内で指定してください。")
    born, why = _date(birth_date, "birth_date"), _purpose(purpose)
    with command_unit() as session:
        principal = _acting(session, clerk, _READERS, "search", "住民の検索")
        found = service.search(
            session,
            ctx=_context(principal),
            resident_code=resident_code,
            kana=kana,
            birth_date=born,
            address=address,
            include_removed=include_removed,
            limit=limit,
            offset=offset,
            purpose=why,
        )
    print_json(
        SearchResponse(
            total=found.total,
            offset=offset,
            limit=limit,
            results=[record_response(v, show_individual_number=False) for v in found.results],
        ).model_dump(mode="json")
    )


@app.command("outbox", rich_help_panel=_QUERIES_PANEL)
def outbox(
    clerk: ClerkOption,
    after_id: Annotated[int, typer.Option("--after-id", min=0, help="このID より後のメッセージ")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="最大件数")] = 100,
    undelivered: Annotated[bool, typer.Option("--undelivered", help="未送信のものだけ")] = False,
) -> None:
    """住基ネットへの送信メッセージを1行ずつ表示する (監督職員のみ。個人番号はマスク)。"""
    with command_unit() as session:
        principal = _acting(session, clerk, _SUPERVISORS, "outbox", "送信メッセージの表示")
        rows = service.outbox(
            session,
            lg_code=principal.organisation_code,
            viewer=accounts.actor_of(principal),
            undelivered_only=undelivered,
            after_id=after_id,
            limit=limit,
        )
        items = [outbox_response(m, payload) for m, payload in rows]
    for item in items:
        print_json(item.model_dump(mode="json"))
