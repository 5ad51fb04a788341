"""A run's results as JSON, a markdown summary and PNG charts (Japanese labels, IPAex Gothic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import japanize_matplotlib  # noqa: F401 - registers IPAexGothic as the default font
import matplotlib.pyplot as plt
import numpy as np

from bench.config import BENCHMARKS, BY_KEY

CHARTS = ("targets", "baselines", "latency", "memory", "import", "progress")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()


def entry(key: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """One benchmark's line in the JSON: figure, target, baseline and ratio, met or missed."""
    spec = BY_KEY[key]
    figure = outcome.get("figure")
    baseline = outcome.get("baseline")
    ratio = None
    if figure is not None and baseline:
        ratio = figure / baseline
    result: dict[str, Any] = {
        "key": key,
        "title": spec.title,
        "figure": None if figure is None else round(float(figure), 3),
        "unit": spec.target.unit,
        "target": spec.target.describe(),
        "target_value": spec.target.value,
        "met": spec.target.met(figure),
        "baseline": None if baseline is None else round(float(baseline), 3),
        "baseline_description": spec.baseline,
        "ratio": None if ratio is None else float(f"{ratio:.4g}"),  # 4 significant digits, however small
        "details": outcome.get("details", {}),
    }
    if figure is not None:
        t = spec.target
        result["shortfall"] = (
            round(1 - figure / t.value, 4) if t.at_least and figure < t.value else
            round(figure / t.value - 1, 4) if not t.at_least and figure > t.value else 0.0
        )  # fmt: skip
    if spec.second is not None:
        second = outcome.get("second")
        result["second"] = {
            "label": spec.second_label,
            "value": None if second is None else round(float(second), 3),
            "unit": spec.second.unit,
            "target": spec.second.describe(),
            "met": spec.second.met(second),
        }
    if "error" in outcome:
        result["error"] = outcome["error"]
    return result


def _mark(met: bool | None) -> str:
    return "—" if met is None else ("達成" if met else "未達")


def _storage_lines(run: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    """The databases' size, and per resident: what decides whether a larger N fits the disk."""
    municipal = machine["postgresql"].get("database_bytes")
    national = machine.get("national_database_bytes")
    if not municipal or not national or not run["residents"]:
        return []
    per_resident = (municipal + national) / run["residents"]
    return [
        f"- データベース: 市区町村側 {machine['postgresql']['database_size']}, "
        f"全国側 {machine['national_database_size']} (住民1人あたり {per_resident:,.0f} バイト)"
    ]


def markdown(report: dict[str, Any], charts: dict[str, str]) -> str:
    run = report["run"]
    machine = report["machine"]
    lines = [
        f"# ベンチマーク結果 {run['started_at']} (N = {run['residents']:,})",
        "",
        f"コマンド: `{run['command']}`",
        "",
        f"- 住民数: {run['residents']:,} (要求 {run['residents_requested']:,}, seed {run['seed']}"
        + (f", 都道府県 {','.join(run['prefectures'])}" if run["prefectures"] else "")
        + f"), データ: {'再利用' if run['reused_data'] else '今回生成・取込'}",
        f"- 計算機: {machine['cpu']} × {machine['cores']} コア, メモリ {machine['memory_gib']} GiB, "
        f"{machine['postgresql']['version'].split(' on ')[0]} "
        f"(shared_buffers {machine['postgresql'].get('shared_buffers')}, "
        f"max_wal_size {machine['postgresql'].get('max_wal_size')})",
        f"- 負荷 (load average 1分): 開始時 {machine['load_before'][0]:.2f}, "
        f"測定中 平均 {machine['load_mean']:.2f} "
        f"/ 最大 {machine['load_max']:.2f}, 終了時 {machine['load_after'][0]:.2f} "
        "(2コアを他の作業と共有。数値は専有時より低く出ます)",
        *_storage_lines(run, machine),
        f"- サーバー: {run['server']}, 並列度 照会 {run['concurrency']} / 検索 {run['search_concurrency']} "
        f"/ 異動 {run['events_concurrency']} / PDF {run['pdf_concurrency']}, "
        f"測定 {run['duration']} 秒 (ウォームアップ {run['warmup']} 秒)",
        "",
        "| ベンチマーク | 測定値 | 目標 | 判定 | 基準 (同じ実行で測定) | 比 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for b in report["benchmarks"]:
        baseline = (
            f"{fmt(b['baseline'], b['unit'])} ({b['baseline_description']})"
            if b["baseline"] is not None
            else "—"
        )
        ratio = f"{b['ratio']:.1%}" if b["ratio"] is not None else "—"
        figure = "エラー" if "error" in b else fmt(b["figure"], b["unit"])
        lines.append(
            f"| {b['title']} | {figure} | {b['target']} | {_mark(b['met'])} | {baseline} | {ratio} |"
        )
        if "second" in b:
            s = b["second"]
            value = fmt(s["value"], s["unit"])
            lines.append(f"| ↳ {s['label']} | {value} | {s['target']} | {_mark(s['met'])} | — | — |")
    missed = [b for b in report["benchmarks"] if b["met"] is False or b.get("second", {}).get("met") is False]
    if missed:
        lines += ["", "## 未達の目標", ""]
        for b in missed:
            parts = []
            if b["met"] is False and b.get("shortfall"):
                parts.append(
                    f"{b['target']} に対し {fmt(b['figure'], b['unit'])} ({b['shortfall']:.0%} 不足)"
                    if BY_KEY[b["key"]].target.at_least
                    else f"{b['target']} に対し {fmt(b['figure'], b['unit'])} ({b['shortfall']:.0%} 超過)"
                )
            s = b.get("second")
            if s and s["met"] is False:
                parts.append(f"{s['label']} {fmt(s['value'], s['unit'])} (目標 {s['target']})")
            lines.append(f"- {b['title']}: " + "; ".join(parts))
    errors = [b for b in report["benchmarks"] if "error" in b]
    if errors:
        lines += ["", "## エラー", ""]
        lines += [f"- {b['title']}: `{b['error']}`" for b in errors]
    if report.get("profiles"):
        lines += ["", "## プロファイル (py-spy、サーバープロセス、上位の jumin 関数・包含割合)", ""]
        for key, prof in report["profiles"].items():
            if not prof or not prof.get("samples"):
                continue
            top = ", ".join(f"`{f}` {p}%" for f, p in (prof.get("jumin") or prof["inclusive"])[:6])
            lines.append(f"- {BY_KEY[key].title} ({prof['samples']} サンプル): {top}")
    if charts:
        lines += ["", "## グラフ", ""]
        lines += [f"![{name}]({path})" for name, path in charts.items()]
    return "\n".join(lines) + "\n"


# --- charts ------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_targets(report: dict[str, Any], path: Path) -> bool:
    rows = []
    for b in report["benchmarks"]:
        spec = BY_KEY[b["key"]]
        if b["figure"]:
            score = (
                b["figure"] / spec.target.value if spec.target.at_least else spec.target.value / b["figure"]
            )
            rows.append((b["title"], score, b["met"]))
        s = b.get("second")
        if s and s["value"] and spec.second is not None:
            rows.append((f"{b['title']} ({s['label']})", spec.second.value / s["value"], s["met"]))
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    names = [r[0] for r in rows][::-1]
    scores = [r[1] for r in rows][::-1]
    colors = ["#2e7d32" if r[2] else "#c62828" for r in rows][::-1]
    ax.barh(names, scores, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("目標に対する達成度 (1 = 目標ちょうど、右ほど良い、対数目盛)")
    ax.set_title(f"目標との比較 (N = {report['run']['residents']:,})")
    for y, s in enumerate(scores):
        ax.text(s, y, f" {s:.2g}", va="center", fontsize=8)
    _save(fig, path)
    return True


def chart_baselines(report: dict[str, Any], path: Path) -> bool:
    rows = [b for b in report["benchmarks"] if b["figure"] and b["baseline"]]
    if not rows:
        return False
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.6), squeeze=False)
    for ax, b in zip(axes[0], rows, strict=True):
        ax.bar(["測定値", "基準"], [b["figure"], b["baseline"]], color=["#1565c0", "#9e9e9e"])
        ax.set_title(b["key"], fontsize=10)
        ax.set_ylabel(b["unit"])
        ax.set_yscale("log")
        ax.text(0, b["figure"], f"{b['figure']:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.text(1, b["baseline"], f"{b['baseline']:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_xlabel(f"比 {b['ratio']:.1%}")
        ax.axhline(b["target_value"], color="#c62828", linestyle="--", linewidth=1)
        ax.text(1.45, b["target_value"], "目標", color="#c62828", fontsize=8, va="bottom", ha="right")
    fig.suptitle("測定値と同じ実行での基準 (対数目盛)")
    _save(fig, path)
    return True


def chart_latency(latencies: dict[str, list[float]], path: Path) -> bool:
    series = {k: v for k, v in latencies.items() if v}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for name, values in series.items():
        a = np.sort(np.asarray(values))
        ax.plot(a, np.arange(1, len(a) + 1) / len(a), label=f"{name} (n={len(a):,})")
    ax.set_xscale("log")
    ax.set_xlabel("ミリ秒 (対数目盛)")
    ax.set_ylabel("累積割合")
    for q in (0.95, 0.99):
        ax.axhline(q, color="grey", linewidth=0.6, linestyle=":")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("応答時間・複製遅延の分布 (累積)")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)
    return True


def chart_memory(
    samples: list[tuple[float, float, float]], marks: list[tuple[float, str]], path: Path
) -> bool:
    if not samples:
        return False
    fig, ax = plt.subplots(figsize=(9, 3.8))
    t = [s[0] for s in samples]
    ax.plot(t, [s[1] for s in samples], label="最大のプロセス")
    if any(s[2] != s[1] for s in samples):
        ax.plot(t, [s[2] for s in samples], label="全ワーカー合計", alpha=0.6)
    ax.axhline(1024, color="#c62828", linestyle="--", linewidth=1, label="目標 1 GiB")
    for x, label in marks:
        ax.axvline(x, color="grey", linewidth=0.6)
        ax.text(x, ax.get_ylim()[1] * 0.98, f" {label}", rotation=90, va="top", fontsize=7)
    ax.set_xlabel("秒")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("サーバープロセスのメモリ")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def chart_import(per_municipality: list[list[Any]], path: Path) -> bool:
    if len(per_municipality) < 2:
        return False
    n = np.asarray([p[1] for p in per_municipality], dtype=float)
    s = np.asarray([p[2] for p in per_municipality], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # Each point is one municipality's validation and write, timed where it ran (the
    # national seed, done per group, is not in it); stragglers are left out of the fit.
    keep = np.ones(len(n), dtype=bool)
    if len(set(n.tolist())) > 1:
        for _ in range(2):
            slope, intercept = np.polyfit(n[keep], s[keep], 1)
            residual = s - (slope * n + intercept)
            mad = float(np.median(np.abs(residual[keep] - np.median(residual[keep])))) or 1e-9
            keep = residual < max(10 * mad, 5.0)
        slope, intercept = np.polyfit(n[keep], s[keep], 1)
        xs = np.linspace(0, n.max(), 50)
        ax.plot(
            xs,
            slope * xs + intercept,
            color="#c62828",
            label=f"固定費 {intercept * 1000:.0f} ms/団体 + {slope * 1000:.2f} ms/人 (突出値を除く)",
        )
    ax.scatter(n[keep], s[keep], s=6, alpha=0.5, label="市区町村側の取込")
    if (~keep).any():
        ax.scatter(n[~keep], s[~keep], s=14, marker="x", color="#6a1b9a", label="突出値")
    ax.legend(fontsize=8)
    ax.set_xlabel("団体の住民数")
    ax.set_ylabel("秒")
    ax.set_title(f"団体ごとの検査と登録の時間 (全ワーカーの合計 {s.sum():,.0f} 秒、{len(n):,} 団体)")
    _save(fig, path)
    return True


def chart_progress(progress: list[list[float]], path: Path) -> bool:
    """Residents imported over time, and the rate over each stretch: does it hold as the tables grow?"""
    if len(progress) < 3:
        return False
    t = np.asarray([p[0] for p in progress], dtype=float) / 60
    n = np.asarray([p[1] for p in progress], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(t, n / 1e6, color="#1565c0", label="取り込んだ住民 (百万人)")
    ax.set_xlabel("分")
    ax.set_ylabel("百万人")
    # The rate over stretches of about a twentieth of the import (outcomes arrive in bursts).
    edges = np.linspace(0, n[-1], 21)
    at = np.interp(edges, n, t)
    rates = np.diff(edges) / np.maximum(np.diff(at) * 60, 1e-9)
    rate_ax = ax.twinx()
    rate_ax.stairs(rates, at, color="#c62828", label="その間の速度 (人/秒)")
    rate_ax.set_ylim(0, float(rates.max()) * 1.15)
    rate_ax.set_ylabel("人/秒")
    lines = ax.get_legend_handles_labels()
    rate_lines = rate_ax.get_legend_handles_labels()
    ax.legend(lines[0] + rate_lines[0], lines[1] + rate_lines[1], fontsize=8, loc="lower right")
    ax.set_title(f"取込の進み ({n[-1]:,.0f} 人、{t[-1]:,.1f} 分、平均 {n[-1] / (t[-1] * 60):,.0f} 人/秒)")
    _save(fig, path)
    return True


def write(
    report: dict[str, Any],
    *,
    directory: Path,
    stem: str,
    latencies: dict[str, list[float]],
    memory: tuple[list[tuple[float, float, float]], list[tuple[float, str]]],
) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    charts_dir = directory / stem
    charts_dir.mkdir(exist_ok=True)
    made: dict[str, Path] = {}
    per_municipality = report.get("import", {}).get("per_municipality", [])
    builders = {
        "targets": lambda p: chart_targets(report, p),
        "baselines": lambda p: chart_baselines(report, p),
        "latency": lambda p: chart_latency(latencies, p),
        "memory": lambda p: chart_memory(memory[0], memory[1], p),
        "import": lambda p: chart_import(per_municipality, p),
        "progress": lambda p: chart_progress(report.get("import", {}).get("progress", []), p),
    }
    for name in CHARTS:
        path = charts_dir / f"{name}.png"
        if builders[name](path):
            made[name] = path
    report["charts"] = {k: str(v.relative_to(directory)) for k, v in made.items()}
    json_path = directory / f"{stem}.json"
    json_path.write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
    )
    md_path = directory / f"{stem}.md"
    md_path.write_text(markdown(report, report["charts"]), encoding="utf-8")
    return {"json": json_path, "markdown": md_path, **made}


__all__ = ["BENCHMARKS", "CHARTS", "entry", "markdown", "write"]
