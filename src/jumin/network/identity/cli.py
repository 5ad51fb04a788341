"""`jumin network`: the national operator's commands for the inbox (keys of municipalities).

`jumin network reconcile` is mounted here too, from jumin.reconcile: it reads both sides,
which no module under jumin.network may do. The agency commands (jumin.network.agencies.cli)
share the `jumin network` group: :func:`network_group` makes it once, whoever mounts first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jumin.cli_support import command_unit, fail, print_json
from jumin.db import national_engine
from jumin.network.identity import service

app = typer.Typer(help="全国センター (住基ネット): 団体の鍵、本人確認情報の整合性確認", no_args_is_help=True)

NETWORK_HELP = "全国センター (住基ネット): 団体の鍵・整合性確認、行政機関・別表事務・一括照合・都道府県抽出"


def network_group(root: typer.Typer) -> typer.Typer:
    """The `jumin network` group of ``root``, made on first use.

    Two modules add commands to it (the replication's and the agencies'); each merges
    its own Typer into this neutral group, so neither is modified by the other and the
    order of mounting does not matter.
    """
    for group in root.registered_groups:
        if group.name == "network" and group.typer_instance is not None:
            return group.typer_instance
    network = typer.Typer(help=NETWORK_HELP, no_args_is_help=True)
    root.add_typer(network, name="network")
    return network


@app.command("register-key")
def register_key(
    lg_code: Annotated[str, typer.Argument(help="団体の地方公共団体コード (6桁)")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="団体の Ed25519 公開鍵 (PEM) のファイル。- で標準入力")
    ],
) -> None:
    """市区町村の署名用公開鍵を登録する (鍵の更新も同じコマンド)。"""
    try:
        pem = typer.get_text_stream("stdin").read() if str(public_key) == "-" else public_key.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"公開鍵のファイル {public_key} を読めません: {exc}")
    with command_unit(national_engine()) as session:
        view = service.register_key(session, lg_code=lg_code, public_key_pem=pem)
    print_json(
        {"lg_code": view.lg_code, "fingerprint": view.fingerprint, "registered_at": view.registered_at}
    )


@app.command("keys")
def keys() -> None:
    """登録済みの団体の公開鍵 (指紋) を1行ずつ表示する。"""
    with command_unit(national_engine()) as session:
        views = service.list_keys(session)
    for view in views:
        print_json(
            {"lg_code": view.lg_code, "fingerprint": view.fingerprint, "registered_at": view.registered_at}
        )
