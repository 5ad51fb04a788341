"""The benchmark suite's machinery end to end, at a tiny N: it measures nothing worth keeping.

`python -m bench run` generates a population (a few hundred residents of one prefecture),
imports it into PostgreSQL, starts `jumin serve`, runs every benchmark for a second and
writes the JSON, the markdown summary and the charts. No figure is checked against a
target here (speed is never a test); the test proves that each benchmark produced a
figure, a baseline where the issue names one, and the files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PG_URL = os.environ.get("JUMIN_TEST_DATABASE_URL")
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_URL or "").startswith("postgresql"),
        reason="the benchmark suite runs on PostgreSQL only (set JUMIN_TEST_DATABASE_URL)",
    ),
]

EXPECTED = {"import", "lookup", "batch", "extraction", "events", "pdf", "search", "memory"}
WITH_BASELINE = {"import", "lookup", "extraction", "pdf"}
WITH_SECOND = {"lookup", "events"}


def _tiny_run(tmp_path: Path, *options: str) -> Path:
    """Run the suite on about 220 residents of Tottori; the report's path."""
    assert PG_URL is not None
    base, _, name = PG_URL.rpartition("/")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    database = f"{name}_bench" + (f"_{worker}" if worker else "")
    results = tmp_path / "results"
    argv = [
        sys.executable, "-m", "bench", "run",
        "--residents", "50000", "--prefecture", "31",  # Tottori's share of 50,000: about 220 residents
        "--pg", base, "--database", database, "--fresh",
        "--duration", "1", "--warmup", "0.2", "--concurrency", "4", "--events-concurrency", "2",
        "--pdf-concurrency", "2", "--search-concurrency", "2", "--batch-rows", "100",
        "--results-dir", str(results), "--data-dir", str(tmp_path / "data"), "--quiet", *options,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUMIN_")}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (report_path,) = results.glob("*.json")
    return report_path


def test_a_tiny_run_writes_every_figure_with_its_baseline_and_the_charts(tmp_path: Path) -> None:
    report_path = _tiny_run(tmp_path)
    results = report_path.parent
    report = json.loads(report_path.read_text(encoding="utf-8"))
    by_key = {b["key"]: b for b in report["benchmarks"]}
    assert set(by_key) == EXPECTED
    for key, b in by_key.items():
        assert "error" not in b, (key, b.get("error"), b["details"].get("traceback"))
        assert isinstance(b["figure"], float | int), key
        assert b["figure"] > 0, key
        assert b["met"] in (True, False), key
    for key in WITH_BASELINE:
        assert by_key[key]["baseline"] > 0, key
        assert by_key[key]["ratio"] == pytest.approx(
            by_key[key]["figure"] / by_key[key]["baseline"], rel=1e-2
        )
    for key in WITH_SECOND:
        assert by_key[key]["second"]["value"] is not None, key
    assert report["run"]["residents"] > 100
    assert report["import"]["residents"] == report["run"]["residents"]
    # The import's progress: one point per municipality, in order, ending at every resident.
    progress = report["import"]["progress"]
    assert len(progress) == report["import"]["municipalities"]
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert progress[-1][1] == report["import"]["residents"]
    assert by_key["events"]["details"]["undelivered_at_end"] == 0
    assert by_key["events"]["details"]["applied_nationally"] == by_key["events"]["details"]["outbox_messages"]
    assert by_key["extraction"]["details"]["rows"] == by_key["extraction"]["details"]["baseline_rows"]
    assert report["machine"]["load_samples"]
    # Both databases measured in bytes, and per resident in the summary (the disk a larger N needs).
    assert report["machine"]["postgresql"]["database_bytes"] > 0
    assert report["machine"]["national_database_bytes"] > 0

    summary = report_path.with_suffix(".md").read_text(encoding="utf-8")
    assert "| ベンチマーク | 測定値 | 目標 | 判定 |" in summary
    assert "計算機" in summary
    assert "load average" in summary
    assert "住民1人あたり" in summary
    assert "max_wal_size" in summary  # the server settings a bulk import's speed depends on
    charts = {p.stem: p for p in (results / report_path.stem).glob("*.png")}
    assert {"targets", "baselines", "latency", "memory", "import", "progress"} <= set(charts)
    for path in charts.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.name in summary


def test_the_relay_can_deliver_to_a_national_server_of_its_own(tmp_path: Path) -> None:
    report_path = _tiny_run(tmp_path, "--only", "events", "--national-server")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    (events,) = [b for b in report["benchmarks"] if b["key"] == "events"]
    details = events["details"]
    assert details["relay_delivers_to"] == "its own national server"
    assert report["run"]["national_server"] == "own process"
    assert details["outbox_messages"] > 0
    assert details["applied_nationally"] == details["outbox_messages"]
    assert details["undelivered_at_end"] == 0
    assert list((tmp_path / "data").glob("var-*/logs/national-server.log"))  # the second server ran
