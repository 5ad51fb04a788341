"""`jumin import DIR` and `jumin export DIR`: the register in the interchange layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from jumin.cli_support import fail, print_json
from jumin.core.errors import DomainError
from jumin.core.ids import LgCode
from jumin.db import default_engine
from jumin.interchange.importer import ImportOutcome
from jumin.interchange.service import NationalFeed, default_workers, export_directory, import_directory
from jumin.request_context import new_request_id, set_request_id

# Enough to see what is wrong without flooding the terminal; every error is in --errors.
_SHOWN_ERRORS = 50


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def import_command(
    directory: Annotated[Path, typer.Argument(help="交換レイアウトの CSV があるディレクトリ")],
    national: Annotated[
        NationalFeed,
        typer.Option(
            "--national",
            help="全国センターへの反映: seed (取込後に一括登録) / relay (送信待ちに置き、中継で送る)",
        ),
    ] = NationalFeed.SEED,
    check: Annotated[bool, typer.Option("--check", help="検査だけ行い、何も記録しない")] = False,
    operator: Annotated[str, typer.Option("--operator", help="監査記録に残す作業者名")] = "cli",
    errors_file: Annotated[
        Path | None, typer.Option("--errors", help="不正な行をすべてこのファイルに書き出す (CSV)")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="同時に取り込むプロセス数 (0: PostgreSQL ではコア数、SQLite では 1)",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="進捗を表示しない")] = False,
) -> None:
    """交換レイアウトの住民記録を取り込む (団体ごとに全件取込か全件不取込。再実行しても二重にならない)。"""
    if not directory.is_dir():
        fail(f"{directory} はディレクトリではありません。")
    set_request_id("cli-import-" + new_request_id())
    console = Console(stderr=True, quiet=quiet)
    started = time.monotonic()
    with _bar(console) as bar:
        task = bar.add_task("検査" if check else "取込", total=None, rate="")
        done = 0

        def on_start(total: int) -> None:
            bar.update(task, total=total)

        def on_municipality(outcome: ImportOutcome) -> None:
            nonlocal done
            done += outcome.persons
            rate = done / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} 人/秒 {outcome.lg_code}")

        try:
            report = import_directory(
                directory,
                feed=national,
                operator=operator,
                check_only=check,
                workers=workers or default_workers(default_engine()),
                on_start=on_start,
                on_municipality=on_municipality,
            )
        except DomainError as exc:
            fail(f"{exc.title}: {exc.detail}")
    errors = report.errors
    if errors_file is not None:
        with errors_file.open("w", encoding="utf-8") as f:
            f.write("file,line,lg_code,field,reason\n")
            for e in errors:
                reason = e.reason.replace('"', "'")
                f.write(f'{e.file},{e.line},{e.lg_code or ""},{e.field or ""},"{reason}"\n')
    # Refused rows are shown even with --quiet: they are the result, not progress.
    report_console = Console(stderr=True)
    for e in errors[:_SHOWN_ERRORS]:
        report_console.print(e.describe(), markup=False, highlight=False, soft_wrap=True)
    if len(errors) > _SHOWN_ERRORS:
        report_console.print(f"... ほか {len(errors) - _SHOWN_ERRORS} 件", markup=False)
    counts: dict[str, int] = {}
    for m in report.municipalities:
        counts[m.status] = counts.get(m.status, 0) + 1
    print_json(
        {
            "directory": str(directory),
            "municipalities": counts,
            "imported_residents": report.imported_persons,
            "refused_municipalities": [m.lg_code for m in report.municipalities if m.status == "refused"],
            "errors": len(errors),
            "national": national.value,
            "national_seeded_messages": report.seeded,
            "left_for_relay": report.left_for_relay,
            "seconds": round(report.seconds, 2),
            "residents_per_second": round(report.imported_persons / max(report.seconds, 1e-9)),
        }
    )
    if not report.ok:
        raise typer.Exit(1)


def export_command(
    directory: Annotated[Path, typer.Argument(help="出力先ディレクトリ (空であること)")],
    lg: Annotated[list[str] | None, typer.Option("--lg", help="この団体だけ出力する (複数指定可)")] = None,
    operator: Annotated[str, typer.Option("--operator", help="監査記録に残す作業者名")] = "cli",
    quiet: Annotated[bool, typer.Option("--quiet", help="進捗を表示しない")] = False,
) -> None:
    """住民基本台帳を交換レイアウト (CSV) で出力する。"""
    if directory.exists() and any(directory.iterdir()):
        fail(f"{directory} は空ではありません。空のディレクトリを指定してください。")
    try:
        codes = [LgCode.parse(c, field="--lg").value for c in lg] if lg else None
    except DomainError as exc:
        fail(f"{exc.title} ({exc.field}): {exc.detail}")
    set_request_id("cli-export-" + new_request_id())
    console = Console(stderr=True, quiet=quiet)
    started = time.monotonic()
    with _bar(console) as bar:
        task = bar.add_task("出力", total=None, rate="")
        done = 0

        def on_municipality(lg_code: str, persons: int) -> None:
            nonlocal done
            done += persons
            rate = done / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} 人/秒 {lg_code}")

        report = export_directory(
            directory, lg_codes=codes, operator=operator, on_municipality=on_municipality
        )
    print_json(
        {
            "directory": str(directory),
            "municipalities": len(report.municipalities),
            "counts": report.counts,
            "seconds": round(report.seconds, 2),
            "residents_per_second": round(report.counts.get("persons", 0) / max(report.seconds, 1e-9)),
        }
    )
