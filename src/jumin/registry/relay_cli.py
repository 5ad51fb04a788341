"""`jumin relay`: the municipal side's sender, and `jumin registry arrivals` for the window.

`jumin relay` runs until stopped (SIGTERM or Ctrl-C), or drains once with `--once` and
exits 0 when everything was delivered and collected, 1 otherwise. It is safe to kill at
any moment: what was not acknowledged is sent again next time, and the inbox ignores
what it already has.
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import asdict
from types import FrameType
from typing import Annotated

import typer

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.cli_support import command_unit, fail, print_json
from jumin.config import get_settings
from jumin.core.errors import AccessDenied
from jumin.core.ids import LgCode
from jumin.core.replication import MAX_BATCH, municipality_key_name
from jumin.keys import load_or_create_ed25519
from jumin.registry import relay as relay_service

relay_app = typer.Typer(
    help="住基ネットへの送信 (送信待ちの本人確認情報の送信と転出証明書情報の受け取り)",
    invoke_without_command=True,
    no_args_is_help=False,
)

DEFAULT_URL = "http://127.0.0.1:8000"


@relay_app.callback()
def relay(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="送信待ちを送り切り、受け取りを済ませたら終了する")
    ] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_BATCH, help="1回に送るメッセージの最大数")
    ] = 100,
    url: Annotated[
        str, typer.Option("--url", envvar="JUMIN_NETWORK_URL", help="全国センターのURL (http(s)://host:port)")
    ] = DEFAULT_URL,
    lg: Annotated[
        list[str] | None,
        typer.Option("--lg", help="この団体の分だけ扱う (複数指定可。省略時はこのデータベースの全団体)"),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="常駐時の送信間隔 (秒)")] = 5.0,
) -> None:
    """送信待ちメッセージを全国センターへ送り、転入予定者の転出証明書情報を受け取る。"""
    if ctx.invoked_subcommand is not None:
        return
    from jumin.logging import configure

    configure(get_settings().log_level)
    codes = [LgCode.parse(c, field="--lg").value for c in lg] if lg else None
    worker = relay_service.Relay(url=url, lg_codes=codes, batch_size=batch)
    try:
        if once:
            try:
                report = worker.run_once()
            except relay_service.RelayError as exc:
                fail(str(exc), 1)
            print_json(report.as_dict())
            if report.errors:
                raise typer.Exit(1)
            return

        def stop(_signum: int, _frame: FrameType | None) -> None:
            worker.stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        typer.echo(f"{url} へ送信します (停止: Ctrl-C)", err=True)
        worker.run_forever(interval=interval)
    finally:
        worker.close()


@relay_app.command("public-key")
def public_key(lg_code: Annotated[str, typer.Argument(help="団体の地方公共団体コード (6桁)")]) -> None:
    """団体の署名用公開鍵 (PEM) を表示する。無ければ鍵を作る。全国センターに登録を依頼する鍵。"""
    code = LgCode.parse(lg_code, field="lg_code").value
    sys.stdout.write(load_or_create_ed25519(municipality_key_name(code)).public_pem())


_WINDOW = frozenset({Role.CLERK, Role.SUPERVISOR})


def arrivals_command(
    clerk: Annotated[
        str, typer.Option("--clerk", help="操作する職員のログイン名 (所属団体の転入予定者を表示します)")
    ],
    include_arrived: Annotated[bool, typer.Option("--include-arrived", help="転入済みの者も含める")] = False,
    purpose: Annotated[str, typer.Option("--purpose", help="利用目的 (監査ログに記録)")] = "住民基本台帳事務",
) -> None:
    """転入予定者 (転出元から届いた転出証明書情報) を1行ずつ表示する。"""
    with command_unit() as session:
        principal = accounts.principal_for_login(session, login=clerk)
        target = "cli registry arrivals"
        if not principal.has_any(_WINDOW):
            accounts.deny(session, principal=principal, target=target, reason="missing role")
            raise AccessDenied(
                f"{clerk} には転入予定者を表示する権限がありません (窓口職員・監督職員のロールが必要です)。",
                field="clerk",
            )
        if principal.organisation_kind is not OrganisationKind.MUNICIPALITY:
            accounts.deny(session, principal=principal, target=target, reason="organisation kind")
            raise AccessDenied(f"{clerk} は市区町村の職員ではありません。", field="clerk")
        views = relay_service.list_arrivals(
            session,
            actor=accounts.actor_of(principal),
            lg_code=principal.organisation_code,
            include_arrived=include_arrived,
            purpose=purpose,
        )
    for view in views:
        print_json(asdict(view))
