"""PNG charts of the card reports, with Japanese labels.

The Japanese font is IPAexGothic, shipped inside the ``japanize-matplotlib`` package;
it is registered with matplotlib from its file rather than by importing that package,
whose import needs ``distutils`` (gone in Python 3.12). Without it the labels would
render as boxes, so its absence is an error, not a silent fallback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from jumin.card.domain import fiscal_year_label

if TYPE_CHECKING:
    from jumin.card.service import ExpiryRow, RateRow

__all__ = ["expiry_chart", "japanese_font_path", "rates_chart"]


def japanese_font_path() -> Path:
    spec = importlib.util.find_spec("japanize_matplotlib")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "japanize-matplotlib がインストールされていません (pip install japanize-matplotlib)"
        )
    path = Path(spec.origin).parent / "fonts" / "ipaexg.ttf"
    if not path.exists():
        raise RuntimeError(f"日本語フォント {path} が見つかりません")
    return path


@cache
def _font_name() -> str:
    from matplotlib import font_manager

    path = japanese_font_path()
    font_manager.fontManager.addfont(str(path))
    return str(font_manager.FontProperties(fname=str(path)).get_name())


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.family"] = _font_name()
    return plt


def expiry_chart(rows: Sequence[ExpiryRow], path: Path) -> Path:
    """Bars per fiscal year: cards and certificates reaching their expiry."""
    plt = _pyplot()
    labels = [fiscal_year_label(r.fiscal_year) for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.9), 4.5))
    ax.bar([i - 0.2 for i in x], [r.cards for r in rows], width=0.4, label="カード")
    ax.bar([i + 0.2 for i in x], [r.certificates for r in rows], width=0.4, label="電子証明書")
    ax.set_xticks(list(x), labels, rotation=30, ha="right")
    ax.set_ylabel("件数")
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:,.0f}")
    ax.set_title("年度別の有効期限到来数")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def rates_chart(rows: Sequence[RateRow], path: Path, *, kind: str = "prefecture") -> Path:
    """Horizontal bars: application and issuance rates of one kind, best first."""
    plt = _pyplot()
    chosen = [r for r in rows if r.kind == kind]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(chosen) + 1.2)))
    y = range(len(chosen))
    ax.barh([i - 0.2 for i in y], [r.application_rate_pct for r in chosen], height=0.4, label="申請率")
    ax.barh([i + 0.2 for i in y], [r.issuance_rate_pct for r in chosen], height=0.4, label="交付率")
    ax.set_yticks(list(y), [r.name for r in chosen])
    ax.invert_yaxis()
    ax.set_xlabel("%")
    ax.set_xlim(0, 100)
    ax.set_title("マイナンバーカードの申請率・交付率")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
