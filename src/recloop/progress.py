"""Progress bars for long work (training, evaluation, simulation); off with ``--quiet``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class _Bar:
    """A handle to update the current bar's description and live figures."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def set_total(self, total: int) -> None:
        """Change the bar's length (when it is known only once work starts)."""
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def set(self, **figures: float | str) -> None:
        """Show live figures (loss, metric) beside the bar."""
        if self._progress is not None:
            text = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
            )
            self._progress.update(self._task, figures=text)


@contextmanager
def progress_bar(total: int | None, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar (on stderr) that does nothing when ``enabled`` is false."""
    if not enabled:
        yield _Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[figures]}"),
        console=Console(stderr=True),
        transient=False,
    ) as p:
        yield _Bar(p, p.add_task(description, total=total, figures=""))


def track(
    items: Iterable[T], total: int | None, description: str, enabled: bool = True
) -> Iterator[T]:
    """Iterate with a progress bar."""
    with progress_bar(total, description, enabled) as bar:
        for x in items:
            yield x
            bar.advance()
