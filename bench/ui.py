"""Progress bars and messages on stderr (rich), silent with --quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class UI:
    def __init__(self, *, quiet: bool = False) -> None:
        self.console = Console(stderr=True, quiet=quiet)

    def say(self, message: str) -> None:
        self.console.print(message, highlight=False)

    @contextmanager
    def bar(self, description: str, total: float | None) -> Iterator[Bar]:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        with progress:
            task = progress.add_task(description, total=total, note="")
            yield Bar(progress, task)


class Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def update(
        self,
        *,
        completed: float | None = None,
        advance: float | None = None,
        note: str | None = None,
        total: float | None = None,
    ) -> None:
        kwargs: dict[str, object] = {}
        if completed is not None:
            kwargs["completed"] = completed
        if advance is not None:
            kwargs["advance"] = advance
        if note is not None:
            kwargs["note"] = note
        if total is not None:
            kwargs["total"] = total
        self._progress.update(self._task, **kwargs)  # type: ignore[arg-type]
