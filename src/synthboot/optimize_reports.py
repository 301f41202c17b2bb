"""Finished optimize runs read back from the run store, without DSPy.

`synthboot status` shows them; importing `synthboot.optimize` (which imports DSPy, about 2 s)
only to read a few rows made `status` of an optimized run take 5 s on a busy machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthboot.store import Store

PHASES = ("baseline", "compile", "optimized", "test")


@dataclass
class Score:
    n: int
    mean: float
    low: float
    high: float


@dataclass
class PhaseStats:
    phase: str
    calls: int          # distinct LM calls the phase used (made now or answered from the store)
    calls_made: int     # of which made now (a re-run makes none)
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass
class OptimizeReport:
    run_id: int
    round: int
    settings: dict[str, Any]
    program_path: str | None  # relative to the run directory: a run stays whole when moved
    scores: dict[tuple[str, str], Score] = field(default_factory=dict)  # (split, baseline|optimized|gain)
    phases: list[PhaseStats] = field(default_factory=list)
    status: str = "done"

    def _repr_html_(self) -> str:  # Jupyter
        from synthboot.notebook import optimize_html

        return optimize_html(self)


def optimize_reports(store: Store, *, latest_only: bool = False) -> list[OptimizeReport]:
    """Finished optimize runs read back from the store, oldest first (the newest when `latest_only`)."""
    rows = store.optimize_runs("done")
    if latest_only:
        rows = rows[-1:]
    order = {p: i for i, p in enumerate(PHASES)}
    reports = []
    for row in rows:
        report = OptimizeReport(row.id, row.round, row.settings, row.program_path)
        for s in store.optimize_scores(row.id):
            report.scores[s.split, s.program] = Score(s.n, s.mean, s.ci_low, s.ci_high)
        report.phases = sorted((PhaseStats(p.phase, p.calls, p.calls_made, p.prompt_tokens, p.completion_tokens,
                                           p.seconds) for p in store.optimize_phases(row.id)),
                               key=lambda p: order.get(p.phase, 99))
        reports.append(report)
    return reports
