"""Commands that set up 広域交付's road, mounted on the `jumin` root in one call from jumin.cli.

- `jumin network register-endpoint LG --url URL`, `jumin network endpoints`,
  `jumin network public-key`: the national operator's side (where each municipality's
  system answers, and the key the network signs its forwards with).
- `jumin relay trust-network --public-key FILE`: the municipal side installs that key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from jumin.certificates import widearea as home
from jumin.cli_support import command_unit, fail, print_json
from jumin.core.errors import DomainError
from jumin.db import national_engine
from jumin.network.identity import widearea as national
from jumin.network.identity.cli import network_group
from jumin.network.identity.service import key_fingerprint
from jumin.registry.relay_cli import relay_app

network_commands = typer.Typer(help="全国センター: 広域交付の接続先", no_args_is_help=True)


@network_commands.command("register-endpoint")
def register_endpoint(
    lg_code: Annotated[str, typer.Argument(help="団体の地方公共団体コード (6桁)")],
    url: Annotated[str, typer.Option("--url", help="団体のシステムのURL (http(s)://host:port)")],
) -> None:
    """広域交付の照会を取り次ぐ先 (市区町村のシステムのURL) を登録する (変更も同じコマンド)。"""
    with command_unit(national_engine()) as session:
        view = national.register_endpoint(session, lg_code=lg_code, url=url)
    print_json({"lg_code": view.lg_code, "url": view.url, "registered_at": view.registered_at})


@network_commands.command("endpoints")
def endpoints() -> None:
    """登録済みの広域交付の接続先を1行ずつ表示する。"""
    with command_unit(national_engine()) as session:
        views = national.list_endpoints(session)
    for view in views:
        print_json({"lg_code": view.lg_code, "url": view.url, "registered_at": view.registered_at})


@network_commands.command("public-key")
def public_key() -> None:
    """全国センターの署名用公開鍵 (PEM) を表示する。無ければ作る。各市区町村が trust-network で設定する鍵。"""
    sys.stdout.write(national.network_key().public_pem())


def trust_network(
    public_key: Annotated[
        Path,
        typer.Option("--public-key", help="全国センターの Ed25519 公開鍵 (PEM) のファイル。- で標準入力"),
    ],
) -> None:
    """全国センターの公開鍵を設定する (広域交付の照会の署名を確かめる鍵。鍵の更新も同じコマンド)。"""
    try:
        pem = typer.get_text_stream("stdin").read() if str(public_key) == "-" else public_key.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"公開鍵のファイル {public_key} を読めません: {exc}")
    try:
        home.trust_network(pem)
    except DomainError as exc:
        fail(f"{exc.title}: {exc.detail}")
    print_json({"fingerprint": key_fingerprint(pem)})


def _has(group: typer.Typer, name: str) -> bool:
    return any(c.name == name for c in group.registered_commands)


def mount(app: typer.Typer) -> None:
    """Add the commands; a second call (another root, a test) registers nothing twice."""
    group = network_group(app)
    if not any(g.typer_instance is network_commands for g in group.registered_groups):
        group.add_typer(network_commands)
    if not _has(relay_app, "trust-network"):
        relay_app.command("trust-network")(trust_network)
