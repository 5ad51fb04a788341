from __future__ import annotations

import typer

from jumin.audit import service
from jumin.cli_support import command_unit, print_json

app = typer.Typer(help="監査ログ", no_args_is_help=True)


@app.command("verify")
def verify() -> None:
    """ハッシュチェーンと署名付きチェックポイントを検証する。改ざんがあれば終了コード1。"""
    with command_unit() as session:
        report = service.verify(session)
    print_json(
        {
            "intact": report.intact,
            "chains": report.chains,
            "entries": report.entries,
            "checkpoints": report.checkpoints,
        }
    )
    first = report.first_problem
    if first is not None:
        for p in report.problems:
            print_json({"chain": p.chain, "seq": p.seq, "entry_id": p.entry_id, "reason": p.reason})
        typer.echo(
            f"監査ログの改ざんを検出しました: チェーン {first.chain} の {first.seq} 番目 ({first.reason})",
            err=True,
        )
        raise typer.Exit(1)
