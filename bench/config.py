"""What a run measures, against which targets, and where its databases and files live.

The targets are issue 8's, stated for N = 10,000,000 residents on 2 cores. A run at a
smaller N reports against the same targets: a figure that misses at 1M will not meet
them at 10M.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
# Generated populations and the bench deployment's keys and files: large, never committed
# (.gitignore has bench/data/).
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_DATABASE = "bench"


@dataclass(frozen=True, slots=True)
class Target:
    """``value`` in ``unit``; ``at_least`` for throughputs, at most for latencies and memory."""

    value: float
    unit: str
    at_least: bool = True

    def met(self, figure: float | None) -> bool | None:
        if figure is None:
            return None
        return figure >= self.value if self.at_least else figure <= self.value

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.value:,.0f} {self.unit}"


@dataclass(frozen=True, slots=True)
class Benchmark:
    key: str
    title: str
    target: Target
    baseline: str | None = None
    # A second target on the same benchmark (p99 latency beside a throughput).
    second: Target | None = None
    second_label: str = ""


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "import",
        "取込 (jumin import 相当、全国センターへの一括登録を含む)",
        Target(50_000, "residents/s"),
        "COPY of the same rows into bare tables",
    ),
    Benchmark(
        "lookup",
        "住民票コードによる本人確認情報の照会 (HTTP、監査記録つき)",
        Target(3_000, "req/s"),
        "primary-key SELECT via psycopg, same concurrency",
        Target(25, "ms p99", at_least=False),
        "p99",
    ),
    Benchmark("batch", "一括照合 (4情報)", Target(100_000, "rows/s")),
    Benchmark(
        "extraction",
        "都道府県の基準日抽出",
        Target(500_000, "rows/s"),
        "COPY (SELECT ...) TO of the same rows",
    ),
    Benchmark(
        "events",
        "異動 (API → outbox → relay → 全国センター)",
        Target(1_000, "events/s"),
        None,
        Target(1_000, "ms lag p99", at_least=False),
        "replication lag p99",
    ),
    Benchmark("pdf", "署名つき住民票の写し (PDF)", Target(100, "PDFs/s"), "the same page unsigned"),
    Benchmark("search", "カナ氏名検索", Target(50, "ms p95", at_least=False)),
    Benchmark("memory", "サーバープロセスのメモリ (RSS 最大値)", Target(1024, "MiB", at_least=False)),
)

BY_KEY = {b.key: b for b in BENCHMARKS}


@dataclass(slots=True)
class RunConfig:
    residents: int
    seed: int = 1
    prefectures: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    pg: str = DEFAULT_PG
    database: str = DEFAULT_DATABASE
    fresh: bool = False
    duration: float = 15.0
    warmup: float = 3.0
    concurrency: int = 32
    search_concurrency: int = 4
    events_concurrency: int = 8
    pdf_concurrency: int = 4
    batch_rows: int = 50_000
    import_sample: int = 10_000
    workers: int = 1
    import_workers: int = 0
    relay_interval: float = 0.2
    # The relay delivers to a second `jumin serve` of its own, as a national centre apart
    # from the municipality's server would run, instead of the server under load.
    national_server: bool = False
    port: int = 18780
    results_dir: Path = RESULTS_DIR
    data_dir: Path = DATA_DIR
    profile: bool = False
    quiet: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def dataset_key(self) -> str:
        key = f"n{self.residents}-s{self.seed}"
        return key + (f"-p{'-'.join(self.prefectures)}" if self.prefectures else "")

    @property
    def municipal_url(self) -> str:
        return f"{self.pg}/{self.database}"

    @property
    def national_url(self) -> str:
        # The two roles never share a database (DESIGN.md); the national one is the sibling.
        return f"{self.pg}/{self.database}_national"

    @property
    def var_dir(self) -> Path:
        # Keys and sealed files belong with the databases they open: one set per database name.
        return self.data_dir / f"var-{self.database}"

    @property
    def population_dir(self) -> Path:
        return self.data_dir / "populations" / self.dataset_key

    def wants(self, key: str) -> bool:
        return not self.only or key in self.only

    def environment(self) -> dict[str, str]:
        """The jumin settings every process of the run shares (this one, the servers, the relay)."""
        return {
            "JUMIN_DATABASE_URL": self.municipal_url,
            "JUMIN_NATIONAL_DATABASE_URL": self.national_url,
            "JUMIN_VAR_DIR": str(self.var_dir),
            "JUMIN_KEY_DIR": str(self.var_dir / "keys"),
            "JUMIN_LOG_LEVEL": "WARNING",
            # The bench runs its own relay process for the municipality it moves people in.
            "JUMIN_RELAY_INTERVAL_SECONDS": "0",
            "JUMIN_CA_PASSPHRASE": "bench-certificate-signing-passphrase",
            "JUMIN_JPKI_PASSPHRASE": "bench-jpki-passphrase",
            # Logins of the run's own staff accounts stay valid for the whole run.
            "JUMIN_TOKEN_TTL_MINUTES": "600",
            **self.extra,
        }

    def apply_environment(self) -> None:
        os.environ.update(self.environment())
