"""`python -m bench run --residents N`: the benchmark suite of issue 8 (see bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bench.config import DATA_DIR, DEFAULT_DATABASE, DEFAULT_PG, RESULTS_DIR, RunConfig
from bench.report import CHARTS

app = typer.Typer(help="Jumin ベンチマーク (issue 8)", no_args_is_help=True, pretty_exceptions_enable=False)

KEYS = ("import", "lookup", "batch", "extraction", "events", "pdf", "search", "memory")


@app.callback()
def main() -> None:
    """ベンチマークを実行し、結果 (JSON・Markdown・PNG) を bench/results/ に書く。"""


@app.command("run")
def run_command(
    residents: Annotated[int, typer.Option("--residents", help="住民数 N (全国に比例して生成)")],
    seed: Annotated[int, typer.Option("--seed", help="人口生成の乱数の種")] = 1,
    prefecture: Annotated[
        list[str] | None,
        typer.Option("--prefecture", help="N人の全国人口のうちこの都道府県 (2桁) だけ使う。複数可"),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=f"このベンチマークだけ ({', '.join(KEYS)})。複数可")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="データベースを作り直して全件を取り込む")] = False,
    duration: Annotated[float, typer.Option("--duration", help="負荷をかける秒数 (各ベンチマーク)")] = 15.0,
    warmup: Annotated[float, typer.Option("--warmup", help="測定に数えない最初の秒数")] = 3.0,
    concurrency: Annotated[int, typer.Option("--concurrency", help="照会と基準の並列度")] = 32,
    search_concurrency: Annotated[int, typer.Option("--search-concurrency")] = 4,
    events_concurrency: Annotated[int, typer.Option("--events-concurrency")] = 8,
    pdf_concurrency: Annotated[int, typer.Option("--pdf-concurrency")] = 4,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="一括照合の行数 (上限)")] = 50_000,
    import_sample: Annotated[
        int,
        typer.Option(
            "--import-sample", help="データ再利用時に取込を測る標本の人数の上限 (N の1割、最低1,000人)"
        ),
    ] = 10_000,
    workers: Annotated[int, typer.Option("--workers", help="サーバーのプロセス数 (1 = jumin serve)")] = 1,
    import_workers: Annotated[
        int, typer.Option("--import-workers", help="取込のプロセス数 (0: jumin import と同じくコア数)")
    ] = 0,
    relay_interval: Annotated[float, typer.Option("--relay-interval", help="中継の間隔 (秒)")] = 0.2,
    national_server: Annotated[
        bool,
        typer.Option(
            "--national-server",
            help="異動の中継先を別プロセスの全国センター (2つ目の jumin serve) にする"
            " (省略時は負荷を受けるサーバー自身)",
        ),
    ] = False,
    pg: Annotated[str, typer.Option("--pg", help="PostgreSQL (データベース名なし)")] = DEFAULT_PG,
    database: Annotated[
        str, typer.Option("--database", help="市区町村側のデータベース名 (全国側は <名前>_national)")
    ] = DEFAULT_DATABASE,
    port: Annotated[int, typer.Option("--port", help="サーバーのポート (使用中なら空きポート)")] = 18780,
    results_dir: Annotated[Path, typer.Option("--results-dir")] = RESULTS_DIR,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="生成した人口・鍵・ログの置き場所")] = DATA_DIR,
    profile: Annotated[
        bool, typer.Option("--profile", help="py-spy でサーバーと取込のプロファイルを取る")
    ] = False,
    publish: Annotated[
        bool, typer.Option("--publish", help="グラフを docs/images/bench-*.png にも書く")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="進捗を表示しない")] = False,
) -> None:
    """データを用意し (再利用可)、各ベンチマークを PostgreSQL に対して実行する。"""
    unknown = sorted(set(only or ()) - set(KEYS))
    if unknown:
        raise typer.BadParameter(f"未知のベンチマーク: {', '.join(unknown)}", param_hint="--only")
    cfg = RunConfig(
        residents=residents,
        seed=seed,
        prefectures=tuple(sorted(prefecture or ())),
        only=tuple(only or ()),
        pg=pg.rstrip("/"),
        database=database,
        fresh=fresh,
        duration=duration,
        warmup=warmup,
        concurrency=concurrency,
        search_concurrency=search_concurrency,
        events_concurrency=events_concurrency,
        pdf_concurrency=pdf_concurrency,
        batch_rows=batch_rows,
        import_sample=import_sample,
        workers=workers,
        import_workers=import_workers,
        relay_interval=relay_interval,
        national_server=national_server,
        port=port,
        results_dir=results_dir.resolve(),
        data_dir=data_dir.resolve(),
        profile=profile,
        quiet=quiet,
    )
    from bench.run import run

    paths = run(cfg, argv=sys.argv[1:])
    if publish:
        import shutil

        from bench.config import REPO_DIR

        for name in CHARTS:
            if name in paths:
                shutil.copyfile(paths[name], REPO_DIR / "docs" / "images" / f"bench-{name}.png")


if __name__ == "__main__":
    app()
