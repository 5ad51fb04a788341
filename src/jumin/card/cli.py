"""`jumin card`: the national operator's commands (CA, production, setup, notices, sweeper,
expiry, four-facts deliveries, reports), the worker that runs the sweeper and the
deliveries continuously, and the software card reader for the demo.

Every command runs in one unit of work on the national database (the worker: one per
step of each round). Window operations (application, hand-over, PIN reset, lifting a
suspension) are the clerks' and go through the API (docs/card.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import signal
import sys
import threading
from base64 import b64decode, b64encode
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jumin.audit.domain import Actor
from jumin.card import fourfacts, service
from jumin.card.domain import CertificateKind, fiscal_year_label, today_jst
from jumin.card.jpki import service as jpki
from jumin.card.worker import CardWorker, worker_round
from jumin.cli_support import command_unit, fail, print_json
from jumin.config import get_settings
from jumin.db import national_engine

app = typer.Typer(help="マイナンバーカード・公的個人認証 (全国センター)", no_args_is_help=True)
ca_app = typer.Typer(help="認証局", no_args_is_help=True)
report_app = typer.Typer(help="集計", no_args_is_help=True)
reader_app = typer.Typer(help="ソフトウェアカードの読み取り (デモ・試験用)", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.add_typer(report_app, name="report")
app.add_typer(reader_app, name="reader")


def _operator() -> Actor:
    return service.national_actor()


@ca_app.command("init")
def ca_init() -> None:
    """ルート認証局と署名用・利用者証明用の認証局を作る (既にあれば何もしない)。"""
    with command_unit(national_engine()) as session:
        created = jpki.ensure_authorities(session)
    print_json({"created": created})


@ca_app.command("cert")
def ca_cert(name: Annotated[str, typer.Argument(help="root / signing / auth")]) -> None:
    """認証局の証明書 (PEM) を表示する。"""
    with command_unit(national_engine()) as session:
        pem = jpki.ca_certificate_pem(session, name)
    sys.stdout.write(pem)


@app.command("produce")
def produce(
    limit: Annotated[int, typer.Option(help="製造する最大枚数")] = 10_000,
    express_only: Annotated[bool, typer.Option("--express-only", help="特急発行の申請のみ")] = False,
) -> None:
    """受付済みの申請からカードを製造する (特急発行を優先)。"""
    with command_unit(national_engine()) as session:
        r = service.produce(session, actor=_operator(), limit=limit, express_only=express_only)
    print_json({"batch_id": r.batch_id, "cards": r.cards, "express": r.express})


@app.command("setup")
def setup(chunk_size: Annotated[int, typer.Option(help="1回の照合で扱う枚数")] = 5000) -> None:
    """交付前設定を一括で行う (不一致は市区町村の作業リストへ)。"""
    with command_unit(national_engine()) as session:
        r = service.pre_issuance_setup(session, actor=_operator(), chunk_size=chunk_size)
    print_json(
        {
            "batch_id": r.batch_id,
            "examined": r.examined,
            "ready": r.ready,
            "mismatched": r.mismatched,
            "chunks": r.chunks,
            "reasons": r.reasons,
        }
    )


@app.command("notices")
def notices(
    months_ahead: Annotated[int, typer.Option(help="何か月先までの期限を対象にするか")] = 3,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="発送用の一覧を書き出すCSV")] = None,
) -> None:
    """有効期限通知書を一括作成する (送付先は作成時点の住民票から)。"""
    with command_unit(national_engine()) as session:
        r = service.renewal_notices(session, actor=_operator(), months_ahead=months_ahead)
        rows = service.notices_of_batch(session, actor=_operator(), batch_id=r.batch_id) if csv_out else []
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["kind", "form_id", "lg_code", "expires_on", "mailing_name", "mailing_address"])
            for n in rows:
                writer.writerow(
                    [n.kind, n.form_id or "", n.lg_code, n.expires_on, n.mailing_name, n.mailing_address]
                )
    print_json(
        {
            "batch_id": r.batch_id,
            "card_notices": r.card_notices,
            "certificate_notices": r.certificate_notices,
            "skipped_not_live": r.skipped_not_live,
        }
    )


@app.command("sweep")
def sweep() -> None:
    """本人確認情報の変更を読み、署名用電子証明書の失効・カードの失効・最新4情報の提供を行う。"""
    with command_unit(national_engine()) as session:
        r = service.sweep_identity_changes(session)
    print_json(
        {
            "history_rows": r.history_rows,
            "signing_revoked": r.signing_revoked,
            "cards_revoked": r.cards_revoked,
            "provisions": r.provisions,
            "position": r.position,
        }
    )


@app.command("expire")
def expire() -> None:
    """有効期限を過ぎたカードと電子証明書を失効させる。"""
    with command_unit(national_engine()) as session:
        cards, certs = service.expire(session, actor=_operator())
    print_json({"cards": cards, "certificates": certs})


@app.command("deliver")
def deliver(limit: Annotated[int, typer.Option(help="1回に送る最大件数")] = 500) -> None:
    """最新4情報を Webhook の事業者へ送る (失敗は間隔を空けて再送)。"""
    with command_unit(national_engine()) as session:
        r = fourfacts.deliver_webhooks(session, post=fourfacts.httpx_poster(), limit=limit)
    print_json(
        {"attempted": r.attempted, "delivered": r.delivered, "failed": r.failed, "given_up": r.given_up}
    )


@app.command("business")
def business(
    code: Annotated[str, typer.Argument(help="事業者コード")],
    name: Annotated[str, typer.Option(help="事業者名")],
    webhook_url: Annotated[str | None, typer.Option(help="Webhook の送り先 (省略時は取得方式のみ)")] = None,
) -> None:
    """最新4情報提供の事業者 (署名検証者) を登録し、APIキーと Webhook 鍵を表示する。"""
    with command_unit(national_engine()) as session:
        new = fourfacts.register_business(
            session, actor=_operator(), code=code, name=name, webhook_url=webhook_url
        )
    print_json(
        {
            "code": new.code,
            "name": new.name,
            "webhook_url": new.webhook_url,
            "api_key": new.api_key,
            "webhook_secret": new.webhook_secret,
        }
    )


@app.command("worker")
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="1回だけ実行して終了する (失敗があれば終了コード1)")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="常駐時の実行間隔 (秒)")] = 30.0,
) -> None:
    """常駐処理: 本人確認情報の変更の取り込み (署名用の自動失効・カードの失効・最新4情報)、
    Webhook の送信、1日1回の有効期限切れ処理。停止は Ctrl-C または SIGTERM。"""
    from jumin.logging import configure

    configure(get_settings().log_level)
    post = fourfacts.httpx_poster()
    if once:
        report, ok = worker_round(expired_on=None, post=post)
        print_json(report)
        if not ok:
            raise typer.Exit(1)
        return
    runner = CardWorker(post=post)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        runner.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    typer.echo(f"{interval:g} 秒ごとに実行します (停止: Ctrl-C)", err=True)
    runner.run_forever(interval=interval)


# --- reports ---------------------------------------------------------------------------------------


@report_app.command("expiry")
def report_expiry(
    from_year: Annotated[int | None, typer.Option(help="この年度以降")] = None,
    chart: Annotated[Path | None, typer.Option(help="グラフを書き出す PNG")] = None,
) -> None:
    """年度別の有効期限到来数 (カード・電子証明書)。"""
    with command_unit(national_engine()) as session:
        rows = service.expiring_by_fiscal_year(session, actor=_operator(), from_year=from_year)
    table = Table(title="年度別の有効期限到来数")
    table.add_column("年度")
    table.add_column("FY", justify="right")
    table.add_column("カード", justify="right")
    table.add_column("電子証明書", justify="right")
    for r in rows:
        table.add_row(
            fiscal_year_label(r.fiscal_year), str(r.fiscal_year), f"{r.cards:,}", f"{r.certificates:,}"
        )
    Console().print(table)
    if chart is not None:
        from jumin.card.charts import expiry_chart

        expiry_chart(rows, chart)
        typer.echo(f"グラフを {chart} に書き出しました。", err=True)


@report_app.command("rates")
def report_rates(
    kind: Annotated[
        str, typer.Option(help="prefecture / designated_city / special_ward / city / town / village / all")
    ] = "prefecture",
    csv_out: Annotated[Path | None, typer.Option("--csv", help="公表表と同じ列の CSV を書き出す")] = None,
    chart: Annotated[Path | None, typer.Option(help="グラフを書き出す PNG")] = None,
) -> None:
    """都道府県・市区町村別の申請率・交付率 (data/card_rates_2022-12.csv と同じ形)。"""
    if kind != "all" and kind not in service.REPORT_KIND_ORDER:
        fail(f"kind は {', '.join(service.REPORT_KIND_ORDER)} または all で指定してください。")
    with command_unit(national_engine()) as session:
        rows = service.issuance_rates(session, actor=_operator())
    shown = [r for r in rows if kind == "all" or r.kind == kind]
    population_column = f"population_{today_jst(dt.datetime.now(dt.UTC)):%Y_%m_%d}"
    table = Table(title="マイナンバーカードの申請率・交付率")
    for column, justify in (
        ("kind", "left"),
        ("rank", "right"),
        ("name", "left"),
        (population_column, "right"),
        ("application_rate_pct", "right"),
        ("issuance_rate_pct", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in shown:
        table.add_row(
            r.kind,
            str(r.rank),
            r.name,
            f"{r.population:,}",
            f"{r.application_rate_pct:.1f}",
            f"{r.issuance_rate_pct:.1f}",
        )
    Console().print(table)
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["kind", "rank", "name", population_column, "application_rate_pct", "issuance_rate_pct"]
            )
            for r in shown:
                writer.writerow(
                    [
                        r.kind,
                        r.rank,
                        r.name,
                        r.population,
                        f"{r.application_rate_pct:.1f}",
                        f"{r.issuance_rate_pct:.1f}",
                    ]
                )
    if chart is not None:
        from jumin.card.charts import rates_chart

        rates_chart(rows, chart, kind="prefecture" if kind == "all" else kind)
        typer.echo(f"グラフを {chart} に書き出しました。", err=True)


# --- the software card reader --------------------------------------------------------------------------


@reader_app.command("certificate")
def reader_certificate(
    card_number: Annotated[str, typer.Argument(help="カード番号")],
    kind: Annotated[CertificateKind, typer.Option(help="auth / signing")] = CertificateKind.AUTH,
) -> None:
    """カードの電子証明書 (DER) を Base64 で表示する (暗証番号は不要)。"""
    with command_unit(national_engine()) as session:
        der = service.read_certificate(session, card_number=card_number, kind=kind)
    typer.echo(b64encode(der).decode())


@reader_app.command("sign")
def reader_sign(
    card_number: Annotated[str, typer.Argument(help="カード番号")],
    data: Annotated[str, typer.Option(help="署名するバイト列 (Base64、ログインの to_sign)")],
    kind: Annotated[CertificateKind, typer.Option(help="auth / signing")] = CertificateKind.AUTH,
    pin: Annotated[
        str | None,
        typer.Option(help="暗証番号 (省略時は端末で尋ねます。コマンド行の値は他の利用者に見えます)"),
    ] = None,
) -> None:
    """カードのICチップで署名し、署名 (Base64) だけを標準出力に書く。

    暗証番号を誤ると残り回数が減り、0回でロックされます (解除は窓口の再設定)。
    """
    try:
        payload = b64decode(data, validate=True)
    except ValueError:
        fail("--data は Base64 で指定してください。")
    if pin is None:
        # The prompt goes to the terminal, never to stdout: SIG=$(jumin card reader sign ...) works.
        pin = getpass.getpass("暗証番号: ")
    with command_unit(national_engine()) as session:
        signature = service.sign_with_card(session, card_number=card_number, kind=kind, pin=pin, data=payload)
    typer.echo(b64encode(signature).decode())
