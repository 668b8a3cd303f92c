"""Progress bars for long work (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

__all__ = ["Progress", "TaskID"]


class Progress:
    """A context manager of named tasks counted in rows (or any unit)."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self._enabled = enabled
        self._bar = RichProgress(
            TextColumn("[bold]{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            disable=not enabled,
            transient=False,
        )

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._bar.__exit__(kind, error, trace)

    def add(self, description: str, total: int | None = None) -> TaskID:
        return self._bar.add_task(description, total=total)

    def advance(self, task: TaskID, amount: int = 1) -> None:
        self._bar.advance(task, amount)

    def done(self, task: TaskID) -> None:
        """Mark a task complete (its total becomes what was counted, for unknown totals)."""
        completed = self._bar.tasks[[t.id for t in self._bar.tasks].index(task)].completed
        self._bar.update(task, total=completed, completed=completed)
