"""`jumin keys`: the data encryption keys kept outside the database."""

from __future__ import annotations

import typer

from jumin.keys import data_keyring

app = typer.Typer(help="データ暗号鍵 (データベースの外に保管)", no_args_is_help=True)


@app.command("rotate")
def rotate() -> None:
    """新しいデータ暗号鍵を作り、以後の暗号化に使う。古い鍵は復号のために残る。"""
    ring = data_keyring()
    new = ring.rotate()
    typer.echo(f"新しい鍵 {new} を現用にしました。保管中の鍵: {', '.join(ring.key_ids())}")


@app.command("list")
def list_keys() -> None:
    """保管中の鍵と現用の鍵を表示する (鍵そのものは表示しない)。"""
    ring = data_keyring()
    for key_id in ring.key_ids():
        typer.echo(f"{key_id}{' (現用)' if key_id == ring.current_id else ''}")
