"""Certificate settings: fees, mayors, the verification address, official-request tasks.

Defaults ship in ``settings.toml`` beside this module; a deployment overrides them in
``<JUMIN_VAR_DIR>/certificates.toml`` with the same shape (fees are set by each
municipality's 手数料条例, so they are configuration, not code). Tables merge: an
override of one municipality's kiosk fee keeps its window fee and mayor.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jumin.certificates.domain import DocumentKind, FeeSchedule, Item, OfficialTask, optional_items
from jumin.config import get_settings
from jumin.core.municipalities import load_master

_PACKAGED = Path(__file__).with_name("settings.toml")
OVERRIDE_NAME = "certificates.toml"


@dataclass(frozen=True, slots=True)
class Municipality:
    """What a certificate prints about its issuer."""

    lg_code: str
    name: str  # 千代田区
    prefecture: str  # 東京都
    mayor_title: str  # 千代田区長
    mayor_name: str
    fees: FeeSchedule


@dataclass(frozen=True, slots=True)
class CertificateSettings:
    verify_base_url: str
    raw: dict[str, Any]

    def municipality(self, lg_code: str) -> Municipality:
        master = load_master()
        entry = master.get(lg_code)
        prefecture = master.get(entry.prefecture_code).name
        defaults = self.raw.get("fees", {})
        own = self.raw.get("municipalities", {}).get(lg_code, {})
        fees = {**defaults, **own.get("fees", {})}
        return Municipality(
            lg_code=lg_code,
            name=entry.name,
            prefecture=prefecture,
            # 千代田区 → 千代田区長, 札幌市 → 札幌市長, 当別町 → 当別町長: the title is the name + 長.
            mayor_title=str(own.get("mayor_title", f"{entry.name}長")),
            mayor_name=str(own.get("mayor_name", "")),
            fees=FeeSchedule(
                window=_fee(fees, "window"),
                kiosk=_fee(fees, "kiosk"),
                wide_area=_fee(fees, "wide_area"),
                official=_fee(fees, "official"),
            ),
        )

    def official_task(self, code: str) -> OfficialTask | None:
        """The 公用請求 task with this code, or None when the settings have none."""
        raw = self.raw.get("official_tasks", {}).get(code)
        return None if raw is None else _official_task(code, raw)

    def official_tasks(self) -> tuple[OfficialTask, ...]:
        tasks = self.raw.get("official_tasks", {})
        return tuple(_official_task(code, tasks[code]) for code in sorted(tasks))


def _official_task(code: str, raw: dict[str, Any]) -> OfficialTask:
    where = f"certificates settings: official_tasks.{code}"
    try:
        kinds = frozenset(DocumentKind(k) for k in raw["kinds"])
        items = frozenset(Item(i) for i in raw.get("items", []))
        title, basis = str(raw["title"]), str(raw["basis"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if not kinds:
        raise ValueError(f"{where}: kinds must name at least one document kind")
    if not items <= optional_items():
        outside = ", ".join(sorted(i.value for i in items - optional_items()))
        raise ValueError(f"{where}: items may list only optional items, not {outside}")
    return OfficialTask(code=code, title=title, basis=basis, kinds=kinds, items=items)


def _fee(table: dict[str, Any], channel: str) -> int:
    value = table.get(channel)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"certificates settings: fee {channel!r} must be a non-negative integer, got {value!r}"
        )
    return value


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_cache: dict[tuple[Path, bytes], CertificateSettings] = {}


def load_settings(var_dir: Path | None = None) -> CertificateSettings:
    """The packaged settings merged with the deployment's file, re-read when that file changes.

    Keyed by the override's content, not its modification time: two edits within one
    timestamp tick must not leave the first one in force.
    """
    override = (var_dir or get_settings().var_dir) / OVERRIDE_NAME
    content = override.read_bytes() if override.exists() else b""
    cached = _cache.get((override, content))
    if cached is not None:
        return cached
    raw = tomllib.loads(_PACKAGED.read_text(encoding="utf-8"))
    if content:
        raw = _merge(raw, tomllib.loads(content.decode("utf-8")))
    settings = CertificateSettings(verify_base_url=str(raw["verification"]["base_url"]), raw=raw)
    if len(_cache) > 16:
        _cache.clear()
    _cache[(override, content)] = settings
    return settings
