"""Reading and writing a directory in the interchange layout, one municipality at a time.

Every file is UTF-8 (no BOM), comma-separated with a header row, quoted only where
needed, and grouped by ``lg_code`` in ascending order, so that a reader can take one
municipality from all files at once without holding the rest (docs/interchange.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from jumin.interchange.layout import FILES, LAYOUT_VERSION, FileLayout, RowError

__all__ = ["MANIFEST", "InterchangeWriter", "MunicipalityRows", "check_directory", "read_municipalities"]

MANIFEST = "manifest.json"
_BUFFER = 1 << 20


class InterchangeWriter:
    """Writes the six files (and manifest.json on close); rows must come grouped by lg_code."""

    def __init__(self, directory: Path, *, meta: dict[str, Any] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.meta = dict(meta or {})
        self.counts = {layout.name: 0 for layout in FILES}
        self._stack = ExitStack()
        self._writers: dict[str, Any] = {}
        for layout in FILES:
            f: IO[str] = self._stack.enter_context(
                (directory / layout.filename).open("w", encoding="utf-8", newline="", buffering=_BUFFER)
            )
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(layout.header)
            self._writers[layout.name] = writer

    def write(self, layout: FileLayout[Any], rows: Sequence[Any]) -> None:
        if rows:
            self._writers[layout.name].writerows(r.values() for r in rows)
            self.counts[layout.name] += len(rows)

    def close(self) -> None:
        self._stack.close()
        manifest = {"layout": LAYOUT_VERSION, "counts": self.counts, **self.meta}
        (self.directory / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    def __enter__(self) -> InterchangeWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._stack.close()


@dataclass
class MunicipalityRows:
    """One municipality's raw rows from every file: (line number, values) in file order."""

    lg_code: str
    rows: dict[str, list[tuple[int, list[str]]]] = field(default_factory=dict)
    digest: str = ""

    def count(self, layout: FileLayout[Any]) -> int:
        return len(self.rows.get(layout.name, []))


@dataclass
class DirectorySummary:
    """What a pre-pass over the directory found: counts per municipality and fatal problems."""

    residents: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    @property
    def total_residents(self) -> int:
        return sum(self.residents.values())


def _reader(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8", newline="", buffering=_BUFFER) as f:
        reader = csv.reader(f)
        for values in reader:
            yield reader.line_num, values


def check_directory(directory: Path) -> DirectorySummary:
    """Headers present and exact, rows grouped by ascending lg_code; counts residents per municipality.

    Run before anything is imported, so that an ordering mistake found late in a file
    cannot leave earlier municipalities imported and later ones not by accident.
    """
    summary = DirectorySummary()
    for layout in FILES:
        path = directory / layout.filename
        if not path.exists():
            summary.errors.append(RowError(layout.filename, 0, "ファイルがありません"))
            continue
        previous = ""
        started: set[str] = set()
        header = True
        try:
            for line, values in _reader(path):
                if header:
                    header = False
                    if values != layout.header:
                        summary.errors.append(
                            RowError(
                                layout.filename,
                                line,
                                f"見出し行が一致しません（必要な列: {','.join(layout.header)}）",
                            )
                        )
                        break
                    continue
                lg = values[0] if values else ""
                if lg != previous:
                    if lg in started or lg < previous:
                        summary.errors.append(
                            RowError(
                                layout.filename,
                                line,
                                "行が地方公共団体コードの昇順にまとまっていません（団体ごとに連続させてください）",
                                "lg_code",
                                lg,
                            )
                        )
                        break
                    started.add(lg)
                    previous = lg
                if layout.name == "persons":
                    summary.residents[lg] = summary.residents.get(lg, 0) + 1
        except UnicodeDecodeError:
            summary.errors.append(RowError(layout.filename, 0, "UTF-8 として読めません"))
        except csv.Error as exc:
            summary.errors.append(RowError(layout.filename, 0, f"CSV として読めません: {exc}"))
    return summary


def read_municipalities(directory: Path) -> Iterator[MunicipalityRows]:
    """Every municipality in ascending lg_code order, with its rows of all six files.

    Call :func:`check_directory` first: this assumes the headers and the order are right.
    The digest is SHA-256 over the municipality's rows of every file, as written: the
    same data gives the same digest, which is how a re-run recognises what it imported.
    """
    iterators = {layout.name: _reader(directory / layout.filename) for layout in FILES}
    heads: dict[str, tuple[int, list[str]] | None] = {}
    for name, iterator in iterators.items():
        next(iterator, None)  # header
        heads[name] = next(iterator, None)
    while True:
        current = [h[1][0] if h[1] else "" for h in heads.values() if h is not None]
        if not current:
            return
        lg = min(current)
        batch = MunicipalityRows(lg)
        digest = hashlib.sha256()
        for layout in FILES:
            rows: list[tuple[int, list[str]]] = []
            head = heads[layout.name]
            while head is not None and (head[1][0] if head[1] else "") == lg:
                rows.append(head)
                digest.update(layout.name.encode() + b"\x1e" + "\x1f".join(head[1]).encode() + b"\x1e")
                head = next(iterators[layout.name], None)
            heads[layout.name] = head
            batch.rows[layout.name] = rows
        batch.digest = digest.hexdigest()
        yield batch
