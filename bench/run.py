"""One run of the suite: prepare the data, start the server, measure, write the report."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import measures
from bench.config import BY_KEY, REPO_DIR, RunConfig
from bench.databases import ensure_database, server_facts
from bench.profiler import Profile, py_spy
from bench.server import MemorySampler, free_port, start_server
from bench.ui import UI

HTTP_BENCHMARKS = ("lookup", "search", "events", "batch", "extraction", "pdf")


class LoadWatcher:
    """The machine's 1-minute load average every few seconds: the run shares its cores."""

    def __init__(self, interval: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True, name="bench-load")

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(interval)

    def __enter__(self) -> LoadWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)


def machine_facts(cfg: RunConfig) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_kib = int(f.readline().split()[1])
    except OSError:
        mem_kib = 0
    national = server_facts(cfg.national_url)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "postgresql": server_facts(cfg.municipal_url),
        "national_database_size": national["database_size"],
        "national_database_bytes": national["database_bytes"],
    }


def _command(argv: list[str] | None) -> str:
    return "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])


def run(cfg: RunConfig, *, argv: list[str] | None = None) -> dict[str, Path]:
    ui = UI(quiet=cfg.quiet)
    cfg.apply_environment()
    ensure_database(cfg.municipal_url)
    ensure_database(cfg.national_url)
    started = dt.datetime.now().astimezone()
    run_id = started.strftime("%Y%m%d%H%M%S")
    results_stem = f"{started:%Y-%m-%d}-n{cfg.residents}" + (
        f"-p{'-'.join(cfg.prefectures)}" if cfg.prefectures else ""
    )
    profiles_dir = cfg.var_dir / "profiles" / run_id
    outcomes: dict[str, dict[str, Any]] = {}
    profiles: dict[str, Any] = {}
    latencies: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    if cfg.profile and py_spy() is None:
        ui.say("[yellow]py-spy が見つからないため、プロファイルは取りません (BENCH_PY_SPY)。[/yellow]")

    from bench.dataset import prepare

    with LoadWatcher() as watcher:
        profile = (
            Profile(os.getpid(), profiles_dir / "import.txt", subprocesses=False) if cfg.profile else None
        )
        prepared = prepare(cfg, ui)
        if profile is not None:
            profiles["import"] = profile.stop()
        measured = prepared.import_measurement
        outcomes["import"] = {
            "figure": measured.rate if measured.errors == 0 else None,
            # The same residents (with their households, events and cards) COPYed into bare tables.
            "baseline": measured.residents / prepared.copy["seconds"]
            if prepared.copy["seconds"] > 0
            else None,
            "details": {
                **{k: v for k, v in measured.as_dict().items() if k not in ("per_municipality", "progress")},
                "copy_baseline": prepared.copy,
                "earlier_full_import": prepared.earlier_import,
            },
        }
        lg, lg_residents = measures.largest_municipality(cfg)
        pref, pref_residents = measures.largest_prefecture(cfg)
        port = free_port(cfg.port)
        # The tree's own src first: a virtualenv shared between worktrees installs one of
        # them, and the server must run the code the run is measuring.
        env = {
            **os.environ,
            **cfg.environment(),
            "PYTHONPATH": os.pathsep.join([str(REPO_DIR / "src"), str(REPO_DIR)]),
        }
        server_desc = (
            "jumin serve (1 process)" if cfg.workers <= 1 else f"uvicorn {cfg.workers} workers (bench.server)"
        )
        wanted = [k for k in HTTP_BENCHMARKS if cfg.wants(k)]
        sampler: MemorySampler | None = None
        if wanted or cfg.wants("memory"):
            ui.say(f"サーバーを起動します: {server_desc}, port {port}")
            server = start_server(
                env=env, port=port, workers=cfg.workers, log=cfg.var_dir / "logs" / "server.log"
            )
            sampler = MemorySampler(server.pid)
            sampler.start()
            try:
                actors = measures_actors(cfg, run_id, port, lg, pref)
                steps: dict[str, Callable[[], dict[str, Any]]] = {
                    "lookup": lambda: measures.lookup(cfg, actors, port, ui),
                    "search": lambda: measures.search(cfg, actors, port, ui),
                    "events": lambda: measures.events(cfg, actors, port, ui, env),
                    "batch": lambda: measures.batch(cfg, actors, port, ui),
                    "extraction": lambda: measures.extraction(cfg, actors, port, ui),
                    "pdf": lambda: measures.pdf(cfg, actors, port, ui),
                }
                for key in wanted:
                    sampler.mark(key)
                    profile = Profile(server.pid, profiles_dir / f"{key}.txt") if cfg.profile else None
                    try:
                        outcome = steps[key]()
                    except Exception as exc:  # one failing benchmark must not lose the others
                        ui.say(f"[red]{key} に失敗しました: {exc!r}[/red]")
                        outcome = {
                            "figure": None,
                            "error": repr(exc),
                            "details": {"traceback": traceback.format_exc()},
                        }
                    if profile is not None:
                        profiles[key] = profile.stop()
                    latencies.update(outcome.pop("latencies", {}))
                    outcomes[key] = outcome
                    if not server.alive():
                        raise RuntimeError(f"server died during {key}:\n{server.tail()}")
            finally:
                sampler.stop()
                server.stop()
            peak, total = sampler.peak()
            outcomes["memory"] = {
                "figure": peak,
                "details": {"peak_process_mib": round(peak, 1), "peak_total_mib": round(total, 1),
                            "samples": len(sampler.samples), "server": server_desc},
            }  # fmt: skip
    finished = dt.datetime.now().astimezone()
    from bench import report

    benchmarks = [report.entry(key, outcomes[key]) for key in BY_KEY if key in outcomes]
    data: dict[str, Any] = {
        "run": {
            "id": run_id,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "wall_seconds": round((finished - started).total_seconds(), 1),
            "command": _command(argv),
            "residents": prepared.population.residents,
            "residents_requested": cfg.residents,
            "seed": cfg.seed,
            "prefectures": list(cfg.prefectures),
            "dataset_key": cfg.dataset_key,
            "reused_data": prepared.reused,
            "database": cfg.database,
            "server": server_desc,
            "workers": cfg.workers,
            "concurrency": cfg.concurrency,
            "search_concurrency": cfg.search_concurrency,
            "events_concurrency": cfg.events_concurrency,
            "national_server": "own process" if cfg.national_server else "the server under load",
            "pdf_concurrency": cfg.pdf_concurrency,
            "duration": cfg.duration,
            "warmup": cfg.warmup,
            "municipality": {"lg_code": lg, "residents": lg_residents},
            "prefecture": {"code": pref, "residents": pref_residents},
        },
        "machine": {
            **machine_facts(cfg),
            "load_before": list(load_before),
            "load_after": list(os.getloadavg()),
            "load_mean": round(sum(watcher.samples) / max(len(watcher.samples), 1), 2),
            "load_max": round(max(watcher.samples, default=0.0), 2),
            "load_samples": [round(x, 2) for x in watcher.samples],
        },
        "population": {
            "directory": str(prepared.population.directory),
            "counts": prepared.population.counts,
            "generated_seconds": prepared.population.generated_seconds,
        },
        "import": prepared.import_measurement.as_dict(),
        "benchmarks": benchmarks,
        "profiles": profiles,
    }
    paths = report.write(
        data,
        directory=cfg.results_dir,
        stem=results_stem,
        latencies=latencies,
        memory=(sampler.samples, sampler.marks) if sampler is not None else ([], []),
    )
    ui.say(f"結果: {paths['json']}\n要約: {paths['markdown']}")
    if not cfg.quiet:
        ui.console.print(paths["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False)
    return paths


def measures_actors(cfg: RunConfig, run_id: str, port: int, lg: str, pref: str) -> Any:
    from bench.actors import prepare_actors

    for attempt in range(3):
        try:
            return prepare_actors(cfg, run_id=f"{run_id}{attempt or ''}", base_url=f"http://127.0.0.1:{port}",
                                  lg_code=lg, prefecture_code=pref)  # fmt: skip
        except Exception:
            if attempt == 2:
                raise
            time.sleep(1)  # a TOTP step boundary or a slow first request; try with new accounts
    raise AssertionError("unreachable")
