"""`jumin network ...` for the agency side: clients and tasks, batches, workers.

Every command runs on the national database (JUMIN_NATIONAL_DATABASE_URL, by default
var/national.db), one unit of work per step, as the API does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.cli_support import fail, print_json
from jumin.core.errors import DomainError
from jumin.db import national_engine, unit_of_work
from jumin.network.agencies import jobs, service
from jumin.network.agencies.domain import BatchEncoding, BatchKind, BatchStatus, OnError
from jumin.network.identity.cli import network_group
from jumin.request_context import new_request_id, set_request_id

app = typer.Typer(
    help="全国ネットワーク（住基ネット）: 行政機関・別表事務・一括照合・抽出", no_args_is_help=True
)

READ_CHUNK = 1024 * 1024


@contextmanager
def _unit() -> Iterator[Session]:
    """One unit of work on the national database; a domain error becomes a message."""
    try:
        with unit_of_work(national_engine()) as session:
            yield session
    except DomainError as exc:
        where = f" ({exc.field})" if exc.field else ""
        fail(f"{exc.title}{where}: {exc.detail}")


def _units() -> jobs.Units:
    return lambda: unit_of_work(national_engine())


def _start() -> None:
    set_request_id("cli-" + new_request_id())


@app.command("tasks")
def tasks(as_json: Annotated[bool, typer.Option("--json", help="1行1件のJSONで出力")] = False) -> None:
    """別表事務の一覧を表示する。"""
    if as_json:
        for t in service.list_tasks():
            print_json(
                {
                    "code": t.code,
                    "title": t.title,
                    "provision": t.provision,
                    "fields": sorted(t.fields),
                    "individual_number_key": t.individual_number_key,
                    "feed_events": sorted(t.feed_events),
                    "allows_linkage": t.allows_linkage,
                    "prefecture_use": t.prefecture_use,
                }
            )
        return
    table = Table("コード", "事務", "個人番号キー", "連携", "都道府県", "通知")
    table.columns[0].no_wrap = True
    for t in service.list_tasks():
        table.add_row(
            t.code,
            t.title,
            "可" if t.individual_number_key else "-",
            "可" if t.allows_linkage else "-",
            "可" if t.prefecture_use else "-",
            ",".join(sorted(t.feed_events)) or "-",
        )
    Console().print(table)


@app.command("create-client")
def create_client(
    org: Annotated[str, typer.Option("--org", help="行政機関の団体コード")],
    name: Annotated[str, typer.Option("--name", help="クライアント名")],
    org_name: Annotated[str, typer.Option("--org-name", help="機関が未登録なら、この名称で登録")] = "",
) -> None:
    """全国側に行政機関のAPIクライアントを発行し、IDとシークレットを表示する。"""
    _start()
    with _unit() as session:
        new = service.register_agency_client(
            session, actor=None, organisation_code=org, name=name, organisation_name=org_name or None
        )
    print_json({"client_id": new.client_id, "client_secret": new.client_secret, "organisation_code": org})


@app.command("create-staff")
def create_staff(
    login: Annotated[str, typer.Argument(help="ログイン名")],
    org: Annotated[str, typer.Option("--org", help="団体コード（都道府県は6桁の地方公共団体コード）")],
    kind: Annotated[OrganisationKind, typer.Option("--kind", help="national / prefecture")],
    role: Annotated[list[Role], typer.Option("--role", help="ロール（複数可）")],
    name: Annotated[str, typer.Option("--name", help="表示名")] = "",
    org_name: Annotated[str, typer.Option("--org-name", help="団体が未登録なら、この名称で登録")] = "",
) -> None:
    """全国側の職員（全国センター運用者・都道府県職員）を作成する。"""
    if kind not in (OrganisationKind.NATIONAL, OrganisationKind.PREFECTURE):
        fail("全国側の職員の団体種別は national または prefecture です。")
    _start()
    with _unit() as session:
        accounts.ensure_organisation(session, code=org, kind=kind, name=org_name or org)
        new = accounts.create_staff(
            session, actor=None, organisation_code=org, login=login, display_name=name or login, roles=role
        )
    print_json(
        {
            "login": new.login,
            "organisation_code": new.organisation_code,
            "roles": list(new.roles),
            "password": new.password,
            "totp_secret": new.totp_secret,
            "totp_uri": new.totp_uri,
        }
    )


@app.command("grant-task")
def grant_task(
    client_id: Annotated[str, typer.Argument(help="クライアントID (agc_...)")],
    task_code: Annotated[str, typer.Argument(help="別表事務のコード（jumin network tasks）")],
) -> None:
    """クライアントに別表事務を登録する。"""
    _start()
    with _unit() as session:
        grant = service.grant_task(session, actor=None, client_id=client_id, task_code=task_code)
    print_json({"client_id": grant.client_id, "task": grant.task_code, "title": grant.task_title})


@app.command("revoke-task")
def revoke_task(
    client_id: Annotated[str, typer.Argument(help="クライアントID")],
    task_code: Annotated[str, typer.Argument(help="別表事務のコード")],
) -> None:
    """クライアントの別表事務の登録を取り消す。"""
    _start()
    with _unit() as session:
        service.revoke_task(session, actor=None, client_id=client_id, task_code=task_code)
    typer.echo(f"{client_id} の別表事務 {task_code} の登録を取り消しました。")


@app.command("client-tasks")
def client_tasks(client_id: Annotated[str, typer.Argument(help="クライアントID")]) -> None:
    """クライアントに登録された別表事務を表示する。"""
    _start()
    with _unit() as session:
        grants = service.client_tasks(session, client_id=client_id)
    for g in grants:
        print_json(
            {"task": g.task_code, "title": g.task_title, "active": g.active, "granted_at": g.granted_at}
        )


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            yield chunk


@app.command("verify-batch")
def verify_batch(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="照合するCSV")],
    client_id: Annotated[str, typer.Option("--client-id", help="照合を行うクライアント")],
    task: Annotated[str, typer.Option("--task", help="別表事務のコード")],
    kind: Annotated[BatchKind, typer.Option("--kind", help="resident_code / four_facts")],
    output: Annotated[Path, typer.Option("--output", "-o", help="結果CSVの書き出し先")],
    on_error: Annotated[OnError, typer.Option("--on-error")] = OnError.REJECT_ALL,
    encoding: Annotated[
        BatchEncoding, typer.Option("--encoding", help="CSVの文字コード")
    ] = BatchEncoding.UTF8,
) -> None:
    """CSVを一括照合し、進捗を表示して結果CSVを書き出す（APIの一括照合と同じ処理）。"""
    _start()
    with _unit() as session:
        principal = service.client_principal(session, client_id=client_id)
        ctx = service.authorize(session, principal=principal, task_code=task, target="cli verify-batch")
    upload = service.receive_upload(_file_chunks(file))
    with _unit() as session:
        view = service.create_batch(
            session, ctx=ctx, upload=upload, kind=kind, on_error=on_error, encoding=encoding
        )
    console = Console(stderr=True)
    with Progress(
        TextColumn("照合"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as progress:
        bar = progress.add_task("rows", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        outcome = jobs.run_batch(_units(), view.id, on_progress=on_progress)
    with _unit() as session:
        principal = service.client_principal(session, client_id=client_id)
        ctx = service.authorize(session, principal=principal, task_code=task, target="cli verify-batch")
        status = service.batch_status(session, ctx=ctx, job_id=view.id, errors=20)
    for e in status.errors:
        console.print(f"{e.line}行目 {e.field or ''}: {e.reason}", highlight=False)
    if status.bad_rows > len(status.errors):
        console.print(
            f"…ほか {status.bad_rows - len(status.errors)} 行（GET /network/v1/batches/{view.id}/errors）"
        )
    if outcome.status is not BatchStatus.DONE:
        fail(f"一括照合 {view.id} は {status.status} で終わりました。{status.failure or ''}")
    with _unit() as session:
        ctx = service.authorize(session, principal=principal, task_code=task, target="cli verify-batch")
        chunks, done = service.batch_result(session, ctx=ctx, job_id=view.id)
        with output.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
    print_json(
        {
            "batch_id": done.id,
            "rows": done.total_rows,
            "bad_rows": done.bad_rows,
            "matched": done.matched,
            "ambiguous": done.ambiguous,
            "partial": done.partial,
            "not_found": done.not_found,
            "result_sha256": done.result_sha256,
            "output": str(output),
        }
    )


@app.command("run-batches")
def run_batches(
    stale: Annotated[bool, typer.Option("--stale", help="中断された照合もやり直す")] = False,
) -> None:
    """待ち行列の一括照合を処理する（サーバー停止で残ったものの処理にも使う）。"""
    for outcome in jobs.run_pending_batches(_units(), stale=stale):
        print_json({"batch_id": outcome.job_id, "status": outcome.status, "rows": outcome.total})


@app.command("run-extractions")
def run_extractions(
    stale: Annotated[bool, typer.Option("--stale", help="中断された抽出もやり直す")] = False,
) -> None:
    """承認済みの都道府県抽出を作成する。"""
    for outcome in jobs.run_pending_extractions(_units(), stale=stale):
        print_json({"extraction_id": outcome.extraction_id, "status": outcome.status, "rows": outcome.rows})


@app.command("deliver-webhooks")
def deliver_webhooks(
    loop: Annotated[bool, typer.Option("--loop", help="止めるまで繰り返す")] = False,
    interval: Annotated[float, typer.Option("--interval", help="繰り返しの間隔（秒）")] = 30.0,
) -> None:
    """期限の来た Webhook を配信する（失敗は間隔を空けて再送）。"""
    with httpx.Client(follow_redirects=False) as http:
        while True:
            _start()
            report = jobs.deliver_webhooks(_units(), http=http)
            print_json(
                {
                    "attempted": report.attempted,
                    "delivered": report.delivered,
                    "failed": report.failed,
                    "events": report.events,
                }
            )
            if not loop:
                return
            time.sleep(interval)


def mount(root: typer.Typer) -> None:
    """Add these commands to `jumin network`, beside the replication commands (either order)."""
    network_group(root).add_typer(app)
