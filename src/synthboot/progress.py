"""Progress for long stages: a rich bar on a terminal, plain periodic lines elsewhere (CI, pipes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

PLAIN_EVERY_S = 10.0
T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def progress_printer(console: Console) -> Iterator:
    """Yields `update(stage, done, total)`."""
    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console, transient=False) as bar:
            tasks: dict[str, TaskID] = {}
            started: dict[str, float] = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, rate="")
                    started[stage] = time.monotonic()
                rate = done / max(1e-9, time.monotonic() - started[stage])
                bar.update(tasks[stage], completed=done, total=total, rate=f"{rate:.2f}/s")

            yield update
        return
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    estimated: set[str] = set()

    finished: set[tuple[str, int]] = set()

    def plain(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        first.setdefault(stage, now)
        if done == total and (stage, total) in finished:
            return  # a stage that reports its end twice prints it once
        # Also the first update with work done: the rate, hence the time left, is known from then.
        first_estimate = done > 0 and stage not in estimated
        if first_estimate:
            estimated.add(stage)
        if done == total or first_estimate or now - last.get(stage, 0.0) >= PLAIN_EVERY_S:
            if done == total:
                finished.add((stage, total))
            last[stage] = now
            elapsed = now - first[stage]
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
            console.print(f"{stage}: {done}/{total} ({rate:.2f}/s, eta {eta})", highlight=False)

    yield plain


def chunked(items: list[T], work: Callable[[list[T]], R],
            on_progress: Callable[[int, int], None] | None = None, size: int = 256) -> list[R]:
    """`work` over `items` a chunk at a time, reporting (done, total) after each chunk.

    For batch work with no natural steps of its own, such as embedding thousands of texts.
    """
    out: list[R] = []
    if on_progress is not None:
        on_progress(0, len(items))  # starts the clock, so the rate and ETA count the first chunk
    for start in range(0, len(items), size):
        out.append(work(items[start:start + size]))
        if on_progress is not None:
            on_progress(min(start + size, len(items)), len(items))
    return out
