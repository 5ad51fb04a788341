"""`jumin population generate`: a synthetic population in the interchange layout."""

from __future__ import annotations

import datetime as dt
import resource
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
from jumin.interchange.files import InterchangeWriter
from jumin.interchange.layout import ALIASES, CARDS, EVENTS, FOREIGN_RESIDENTS, HOUSEHOLDS, PERSONS
from jumin.population.generator import DEFAULT_AS_OF, GeneratedHousehold, generate, residents_for_scale

app = typer.Typer(help="合成人口 (性能評価・動作確認用の架空の住民)", no_args_is_help=True)


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="出力先ディレクトリ (交換レイアウトの CSV)")],
    scale: Annotated[
        float | None, typer.Option("--scale", help="日本全体 (約1億2,593万人) に対する倍率。1.0 で全国")
    ] = None,
    residents: Annotated[
        int | None, typer.Option("--residents", help="人数で指定する (--scale の代わり)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="乱数の種 (同じ種なら同じ出力)")] = 1,
    prefecture: Annotated[
        list[str] | None, typer.Option("--prefecture", help="この都道府県 (2桁) だけ出力する。複数指定可")
    ] = None,
    as_of: Annotated[str, typer.Option("--as-of", help="基準日 (YYYY-MM-DD)")] = DEFAULT_AS_OF.isoformat(),
    quiet: Annotated[bool, typer.Option("--quiet", help="進捗を表示しない")] = False,
) -> None:
    """全国の人口に比例した架空の住民 (世帯・異動・外国人住民・個人番号カード) を生成する。"""
    if (scale is None) == (residents is None):
        fail("--scale と --residents のどちらか一方を指定してください。")
    total = residents if residents is not None else residents_for_scale(scale or 0.0)
    if total < 1:
        fail("1人以上になる --scale / --residents を指定してください。")
    try:
        reference = dt.date.fromisoformat(as_of)
    except ValueError:
        fail("--as-of は YYYY-MM-DD で指定してください。")
    if out.exists() and any(out.iterdir()):
        fail(f"{out} は空ではありません。空のディレクトリを指定してください。")
    console = Console(stderr=True, quiet=quiet)
    started = time.monotonic()
    meta = {
        "generator": {
            "seed": seed,
            "residents_requested": total,
            "scale": scale if scale is not None else None,
            "prefectures": sorted(prefecture) if prefecture else None,
            "as_of": reference.isoformat(),
        }
    }
    with InterchangeWriter(out, meta=meta) as writer, progress_bar(console) as bar:
        task = bar.add_task("生成", total=total, rate="")
        done = 0

        def sink(h: GeneratedHousehold) -> None:
            writer.write(HOUSEHOLDS, [h.household])
            writer.write(PERSONS, h.persons)
            writer.write(FOREIGN_RESIDENTS, h.foreign)
            writer.write(ALIASES, h.aliases)
            writer.write(EVENTS, h.events)
            writer.write(CARDS, h.cards)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if done % 2000 < n:
                elapsed = max(time.monotonic() - started, 1e-9)
                bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} 人/秒")

        generated = generate(
            residents=total, seed=seed, sink=sink, as_of=reference, prefectures=prefecture, progress=advance
        )
        bar.update(task, completed=generated, total=generated)
        writer.meta["generator"]["residents"] = generated
    elapsed = time.monotonic() - started
    print_json(
        {
            "out": str(out),
            "residents": generated,
            "seconds": round(elapsed, 2),
            "residents_per_second": round(generated / max(elapsed, 1e-9)),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "counts": writer.counts,
        }
    )
