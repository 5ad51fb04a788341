"""`jumin cert`: issue a certificate at the window, verify a PDF, export the CA, set a PIN,
grant agencies the tasks they may make official requests (公用請求) for.

Same shape as the API: ``issue`` builds the API's request model from its options and
calls the same use case, acting as the staff account named by ``--clerk`` (its
organisation is the municipality, its roles must allow window issuance). ``verify``
needs no account: anyone holding the deployment may check a file, exactly as the public
verification page does, and the exit status says the verdict (0 authentic, 1 not).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.certificates import service
from jumin.certificates.domain import DocumentKind, Form, Item, RequesterKind
from jumin.certificates.schemas import RequesterInput, WindowIssueRequest
from jumin.cli_support import command_unit, fail, print_json
from jumin.core.errors import AccessDenied
from jumin.network_client import default_network_client

app = typer.Typer(help="証明書: 窓口交付・真正性の確認・文書署名CA", no_args_is_help=True)

_CLERKS = frozenset({Role.CLERK, Role.SUPERVISOR})


def _acting(session: Session, login: str, command: str, roles: frozenset[Role] = _CLERKS) -> Principal:
    """The named account, refused (and audited) unless the matching API route would let it in."""
    principal = accounts.principal_for_login(session, login=login)
    target = f"cli cert {command}"
    if not principal.has_any(roles):
        accounts.deny(session, principal=principal, target=target, reason="missing role")
        who = "窓口職員・監督職員" if roles == _CLERKS else "監督職員"
        raise AccessDenied(f"{login} にはこの操作の権限がありません ({who})。", field="clerk")
    if principal.organisation_kind is not OrganisationKind.MUNICIPALITY:
        accounts.deny(session, principal=principal, target=target, reason="organisation kind")
        raise AccessDenied(f"{login} は市区町村の職員ではないため、証明書を交付できません。", field="clerk")
    return principal


ClerkOption = Annotated[str, typer.Option("--clerk", help="交付する職員のログイン名")]


@app.command("issue")
def issue(
    clerk: ClerkOption,
    out: Annotated[Path, typer.Option("--out", help="PDFの保存先")],
    kind: Annotated[DocumentKind, typer.Option("--kind", help="証明書の種類")] = DocumentKind.RECORD_COPY,
    form: Annotated[Form, typer.Option("--form", help="世帯連記式 / 個人票")] = Form.HOUSEHOLD,
    person: Annotated[list[int] | None, typer.Option("--person", help="記載する住民ID (複数可)")] = None,
    household: Annotated[int | None, typer.Option("--household", help="世帯全員を記載する世帯ID")] = None,
    include: Annotated[list[Item] | None, typer.Option("--include", help="記載を求める項目 (複数可)")] = None,
    omit: Annotated[list[Item] | None, typer.Option("--omit", help="省略を求める項目 (複数可)")] = None,
    requester: Annotated[
        RequesterKind, typer.Option("--requester", help="請求者の区分")
    ] = RequesterKind.SELF,
    requester_person: Annotated[
        int | None, typer.Option("--requester-person", help="請求者の住民ID (本人・同一世帯の者)")
    ] = None,
    requester_name: Annotated[
        str, typer.Option("--requester-name", help="請求者の氏名 (代理人・第三者)")
    ] = "",
    requester_code: Annotated[
        str | None, typer.Option("--requester-code", help="請求者の住民票コード (分かる場合)")
    ] = None,
    authority: Annotated[
        str | None, typer.Option("--authority", help="代理権を証する書類 (委任状等)")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="請求の事由 (第三者は必須)")] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="基準日 (この日の記載を証明する。2025-04-01 または 令和7年4月1日)"),
    ] = None,
) -> None:
    """窓口で証明書を発行し、署名付きPDFを --out に保存する。"""
    try:
        body = WindowIssueRequest.model_validate(
            {
                "kind": kind,
                "form": form,
                "person_ids": person or None,
                "household_id": household,
                "include": include or [],
                "omit": omit or [],
                "as_of": as_of,
                "requester": RequesterInput(
                    kind=requester,
                    person_id=requester_person,
                    name=requester_name,
                    resident_code=requester_code,
                    authority=authority,
                    reason=reason,
                ),
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '入力'}: {e['msg']}" for e in exc.errors())
        fail(f"入力形式が正しくありません: {problems}")
    with command_unit() as session:
        principal = _acting(session, clerk, "issue")
        ctx = service.context(
            actor=accounts.actor_of(principal),
            lg_code=principal.organisation_code,
            network=default_network_client(),
        )
        issued = service.issue_at_window(session, ctx=ctx, request=body)
    out.write_bytes(issued.pdf)
    print_json(
        {
            "issue_number": issued.issue_number,
            "kind": issued.kind.value,
            "title": issued.kind.label,
            "pages": issued.page_count,
            "fee_yen": issued.fee_yen,
            "sha256": issued.sha256,
            "person_ids": list(issued.person_ids),
            "as_of": issued.as_of.isoformat() if issued.as_of else None,
            "out": str(out),
        }
    )


@app.command("verify")
def verify(file: Annotated[Path, typer.Argument(help="確認するPDF")]) -> None:
    """PDFが発行された証明書そのものか (ハッシュ値と電子署名) を確認する。終了コード 0: 真正, 1: 否。"""
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"ファイル {file} を読めません: {exc.strerror}")
    with command_unit() as session:
        result = service.verify_document(session, pdf=data, via="cli")
    s = result.signature
    print_json(
        {
            "authentic": result.authentic,
            "sha256": result.sha256,
            "issue_number": result.issuance.issue_number if result.issuance else None,
            "issued_by": result.issuance.municipality if result.issuance else None,
            "issued_at": result.issuance.issued_at.isoformat() if result.issuance else None,
            "signature": {"signed": s.signed, "intact": s.intact, "trusted": s.trusted, "signer": s.signer},
            "reasons": list(result.reasons),
        }
    )
    typer.echo(
        "真正な証明書です。" if result.authentic else "真正な証明書であることを確認できません。",
        err=True,
    )
    raise typer.Exit(0 if result.authentic else 1)


@app.command("ca-cert")
def ca_cert(
    out: Annotated[Path | None, typer.Option("--out", help="保存先 (省略時は標準出力)")] = None,
) -> None:
    """文書署名CAの証明書 (PEM) を出力する。PDF閲覧ソフトや pdfsig に信頼させるために使う。"""
    pem = service.ca_certificate_pem()
    if pem is None:
        fail("まだ証明書が発行されていないため、文書署名CAはありません。")
    if out is None:
        sys.stdout.write(pem.decode())
    else:
        out.write_bytes(pem)


@app.command("pin")
def pin(
    person_id: Annotated[int, typer.Argument(help="住民ID")],
    clerk: ClerkOption,
    value: Annotated[
        str | None,
        typer.Option("--pin", help="暗証番号4桁 (省略時は入力を求めます。履歴に残るため対話入力を推奨)"),
    ] = None,
) -> None:
    """コンビニ交付用の暗証番号を設定・再設定する (ロックも解除されます)。窓口で本人確認のうえ行う。"""
    secret = value or typer.prompt("暗証番号 (4桁)", hide_input=True, confirmation_prompt=True)
    with command_unit() as session:
        principal = _acting(session, clerk, "pin")
        ctx = service.context(
            actor=accounts.actor_of(principal),
            lg_code=principal.organisation_code,
            network=default_network_client(),
        )
        at = service.set_pin(session, ctx=ctx, person_id=person_id, pin=secret)
    print_json({"person_id": person_id, "set_at": at.isoformat()})


SupervisorOption = Annotated[str, typer.Option("--supervisor", help="登録する監督職員のログイン名")]
AgencyOption = Annotated[str, typer.Option("--agency", help="機関 (団体) のコード")]
TaskOption = Annotated[str, typer.Option("--task", help="公用請求の事務のコード (jumin cert official-tasks)")]


@app.command("official-tasks")
def official_tasks() -> None:
    """公用請求を受け付ける事務の一覧 (コード・根拠法令・請求できる証明書と項目)。"""
    print_json(
        [
            {
                "code": t.code,
                "title": t.title,
                "basis": t.basis,
                "kinds": sorted(k.value for k in t.kinds),
                "items": sorted(i.value for i in t.items),
            }
            for t in service.official_tasks()
        ]
    )


def _grant_json(view: service.OfficialGrantView) -> dict[str, object]:
    return {
        "lg_code": view.lg_code,
        "agency_code": view.agency_code,
        "task_code": view.task_code,
        "task_title": view.task_title,
        "active": view.active,
        "granted_at": view.granted_at.isoformat(),
        "granted_by": view.granted_by,
    }


@app.command("grant-official")
def grant_official(supervisor: SupervisorOption, agency: AgencyOption, task: TaskOption) -> None:
    """機関にこの事務の公用請求 (POST /certificates/official) を認める。自団体の住民についてのみ有効。"""
    with command_unit() as session:
        principal = _acting(session, supervisor, "grant-official", frozenset({Role.SUPERVISOR}))
        ctx = service.context(
            actor=accounts.actor_of(principal),
            lg_code=principal.organisation_code,
            network=default_network_client(),
        )
        view = service.grant_official_task(session, ctx=ctx, agency_code=agency, task_code=task)
    print_json(_grant_json(view))


@app.command("revoke-official")
def revoke_official(supervisor: SupervisorOption, agency: AgencyOption, task: TaskOption) -> None:
    """機関のこの事務の公用請求の登録を取り消す (記録は残る)。"""
    with command_unit() as session:
        principal = _acting(session, supervisor, "revoke-official", frozenset({Role.SUPERVISOR}))
        ctx = service.context(
            actor=accounts.actor_of(principal),
            lg_code=principal.organisation_code,
            network=default_network_client(),
        )
        view = service.revoke_official_task(session, ctx=ctx, agency_code=agency, task_code=task)
    print_json(_grant_json(view))
