from __future__ import annotations

import datetime as dt
from typing import Annotated

import pyotp
import typer

from jumin.accounts import service
from jumin.accounts.domain import OrganisationKind, Role
from jumin.cli_support import command_unit, print_json

app = typer.Typer(help="職員アカウント・団体・APIクライアントの管理", no_args_is_help=True)


@app.command("create-org")
def create_org(
    code: Annotated[str, typer.Argument(help="団体コード (地方公共団体コード6桁など)")],
    kind: Annotated[OrganisationKind, typer.Option(help="団体の種別")],
    name: Annotated[str, typer.Option(help="団体名")],
) -> None:
    """団体を登録する (登録済みなら何もしない)。"""
    with command_unit() as session:
        org = service.ensure_organisation(session, code=code, kind=kind, name=name)
    print_json({"code": org.code, "kind": org.kind, "name": org.name})


@app.command("create")
def create(
    login: Annotated[str, typer.Argument(help="ログイン名")],
    org: Annotated[str, typer.Option("--org", help="所属団体コード")],
    role: Annotated[list[Role], typer.Option("--role", help="ロール (複数可)")],
    name: Annotated[str, typer.Option("--name", help="表示名")] = "",
) -> None:
    """職員アカウントを作成し、初期パスワードとTOTPシークレットを表示する。"""
    with command_unit() as session:
        new = service.create_staff(
            session,
            actor=None,
            organisation_code=org,
            login=login,
            display_name=name or login,
            roles=role,
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


@app.command("list")
def list_(org: Annotated[str, typer.Option("--org", help="団体コード")]) -> None:
    """団体の職員アカウントを一覧する。"""
    with command_unit() as session:
        views = service.list_accounts(session, actor=None, organisation_code=org)
    for v in views:
        print_json(
            {
                "login": v.login,
                "display_name": v.display_name,
                "roles": list(v.roles),
                "is_active": v.is_active,
                "mfa_enrolled": v.mfa_enrolled,
                "locked_until": v.locked_until,
            }
        )


@app.command("unlock")
def unlock(login: str) -> None:
    """ロックされたアカウントを解除する。"""
    with command_unit() as session:
        service.unlock(session, actor=None, login=login)
    typer.echo(f"{login} のロックを解除しました。")


@app.command("reset-mfa")
def reset_mfa(login: str) -> None:
    """TOTPシークレットを再発行する (端末の紛失時)。"""
    with command_unit() as session:
        new = service.reset_mfa(session, actor=None, login=login)
    print_json({"login": new.login, "totp_secret": new.totp_secret, "totp_uri": new.totp_uri})


@app.command("deactivate")
def deactivate(login: str) -> None:
    """アカウントを無効化する。"""
    with command_unit() as session:
        service.deactivate(session, actor=None, login=login)
    typer.echo(f"{login} を無効化しました。")


@app.command("create-client")
def create_client(
    org: Annotated[str, typer.Option("--org", help="行政機関の団体コード")],
    name: Annotated[str, typer.Option("--name", help="クライアント名")],
) -> None:
    """行政機関のAPIクライアントを発行し、IDとシークレットを表示する。"""
    with command_unit() as session:
        new = service.create_agency_client(session, actor=None, organisation_code=org, name=name)
    print_json({"client_id": new.client_id, "client_secret": new.client_secret, "organisation_code": org})


@app.command("totp")
def totp(secret: Annotated[str, typer.Argument(help="TOTPシークレット (base32)")]) -> None:
    """シークレットから現在のワンタイムパスワードを表示する (認証アプリの代わり、検証用)。"""
    typer.echo(pyotp.TOTP(secret).at(dt.datetime.now(dt.UTC)))
