"""The `jumin` command: one root, each feature mounting its own commands."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pyotp
import typer
from rich.console import Console

from jumin.accounts.cli import app as accounts_app
from jumin.audit.cli import app as audit_app
from jumin.card.cli import app as card_app
from jumin.certificates.cli import app as certificates_app
from jumin.config import get_settings
from jumin.core_commands import ids_app, lg_app, wareki_app
from jumin.interchange.cli import export_command, import_command
from jumin.keys_cli import app as keys_app
from jumin.network.agencies.cli import mount as mount_agencies
from jumin.population.cli import app as population_app
from jumin.registry.cli import app as registry_app
from jumin.replication_cli import mount as mount_replication
from jumin.widearea_cli import mount as mount_wide_area

app = typer.Typer(help="Jumin 住民基本台帳システム", no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="データベース", no_args_is_help=True)
demo_app = typer.Typer(help="デモ環境", no_args_is_help=True)

app.add_typer(ids_app, name="ids")
app.add_typer(wareki_app, name="wareki")
app.add_typer(lg_app, name="lg")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(registry_app, name="registry")
app.add_typer(certificates_app, name="cert")
app.add_typer(card_app, name="card")
app.add_typer(demo_app, name="demo")
app.add_typer(population_app, name="population")
app.command("import")(import_command)
app.command("export")(export_command)
mount_replication(app, registry_app=registry_app)
mount_agencies(app)  # both live under `jumin network`, in either order
mount_wide_area(app)  # 広域交付: endpoints and the network's key, under `jumin network`/`jumin relay`


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """マイグレーションを適用する (市区町村側と全国側の両方のデータベース)。"""
    from jumin.db import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision=revision)
    upgrade(settings.national_database_url, revision=revision)
    typer.echo(f"データベースを {revision} に更新しました。", err=True)


@demo_app.command("seed")
def demo_seed() -> None:
    """デモ団体 (千代田区) と職員を用意し、ログイン情報を表示する。"""
    from jumin.cli_support import command_unit
    from jumin.db import national_engine
    from jumin.demo import DEMO_MUNICIPALITY, seed, seed_national
    from jumin.demo_residents import seed_residents
    from jumin.network_client import default_network_client

    settings = get_settings()
    with command_unit() as session:
        creds = seed(session, settings.var_dir)
    with command_unit(national_engine()) as session:
        national_creds, agency = seed_national(session, settings.var_dir)
    with command_unit() as session:
        network = default_network_client()
        lg_code = DEMO_MUNICIPALITY[0]
        if seed_residents(session, lg_code=lg_code, clerk_login="chiyoda-clerk", network=network):
            typer.echo("千代田区にデモ住民 (出生・転居・死亡・通称を含む) を記録しました。", err=True)
    now = dt.datetime.now(dt.UTC)
    console = Console()
    console.rule("デモ用ログイン情報 (var/demo-credentials.json にも保存)")
    for c in creds:
        console.print(f"[bold]{c.login}[/bold]  団体 {c.organisation_code}  ロール {', '.join(c.roles)}")
        console.print(f"  パスワード       {c.password}", soft_wrap=True)
        console.print(f"  TOTPシークレット {c.totp_secret}", soft_wrap=True)
        console.print(f"  現在のコード     {pyotp.TOTP(c.totp_secret).at(now)}")
        console.print(f"  {c.totp_uri}", soft_wrap=True, highlight=False)
    console.rule("全国サーバーの職員 (/network/v1/auth/login。var/demo-national-credentials.json)")
    for c in national_creds:
        console.print(f"[bold]{c.login}[/bold]  団体 {c.organisation_code}  ロール {', '.join(c.roles)}")
        console.print(f"  パスワード       {c.password}", soft_wrap=True)
        console.print(f"  TOTPシークレット {c.totp_secret}", soft_wrap=True)
        console.print(f"  現在のコード     {pyotp.TOTP(c.totp_secret).at(now)}")
    console.rule("行政機関のAPIクライアント (/network/v1/auth/token。var/demo-agency-client.json)")
    tasks = ", ".join(agency.tasks)
    console.print(f"[bold]{agency.name}[/bold]  機関 {agency.organisation_code}  事務 {tasks}")
    console.print(f"  client_id        {agency.client_id}", soft_wrap=True)
    console.print(f"  client_secret    {agency.client_secret}", soft_wrap=True)
    console.print("現在のコードは `.venv/bin/jumin accounts totp SECRET` でいつでも表示できます。")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="待ち受けるアドレス")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="ポート")] = 8000,
) -> None:
    """APIサーバーを起動する (OpenAPI は /docs)。"""
    import uvicorn

    from jumin.app import create_app
    from jumin.logging import configure
    from jumin.loopback import loopback_url

    configure(get_settings().log_level)
    typer.echo(f"http://{host}:{port} で待ち受けます (API文書: http://{host}:{port}/docs)", err=True)
    # All roles in one process: the relay reaches the national inbox over this server's own port.
    app_ = create_app(relay_url=loopback_url(host, port))
    uvicorn.run(app_, host=host, port=port, access_log=False, log_config=None)


def main() -> None:
    app()
