"""The pipeline's stages, one module each, all following one contract.

A filter stage is a function `(store, spec, upstream_hash, ...) -> StageResult` that decides the
candidates that passed the stage before it, writes one decision per candidate (kept, or rejected
with a reason and details) in one transaction, and is idempotent. Its settings' hash is stored with
each decision and chained to the upstream stage's hash: change a setting, and that stage and every
later one decide again from the stored candidates, with no new generation.

Stages read their upstream's verdicts with `passed`; everything else (status, export, optimize,
the report, top-up, and the split stage's pool) reads outcomes through `synthboot.view`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `synthboot dedup FILE` imports the stages without the store and spec
    from synthboot.store import Candidate, Decision, Store

# The filter stages in pipeline order. A candidate is kept when every stage kept it.
# `grounding` passes everything unless the spec has `sources` (synthboot.stages.grounding). It runs
# before dedup, so an ungrounded or stale example never absorbs a grounded near-duplicate.
FILTER_STAGES = ("validate", "grounding", "dedup", "verify", "judge")


@dataclass
class StageResult:
    stage: str
    settings_hash: str
    decided: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)  # e.g. an empty split (synthboot.stages.split)

    def summary(self) -> str:
        reasons = ", ".join(f"{r} {n}" for r, n in self.rejected.most_common())
        return f"{self.stage}: decided {self.decided}, kept {self.kept}" + (f" (rejected: {reasons})" if reasons else "")


def write_counted(store: Store, stage: str, stage_hash: str, result: StageResult, decisions: list[Decision]) -> None:
    """Write `decisions` for `stage` and count them in `result`."""
    for d in decisions:
        result.decided += 1
        if d.kept:
            result.kept += 1
        else:
            result.rejected[d.reason] += 1
    store.write_decisions(stage, stage_hash, decisions)


def decide_concurrently(store: Store, stage: str, stage_hash: str, result: StageResult,
                        one: Callable[[Candidate], Decision | None], candidates: Sequence[Candidate], *,
                        concurrency: int = 1, on_progress: Callable[[int, int], None] | None = None) -> None:
    """`one` over the candidates on a thread pool (the LM-calling stages, verify and judge).

    Decisions are written (and counted in `result`) in small batches as verdicts arrive: a crash
    keeps what was decided. `None` (stopped, or the LM failed) leaves a candidate undecided.
    """
    done = 0
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix=stage)
    try:
        batch: list[Decision] = []
        for decision in pool.map(one, candidates):
            if decision is None:
                continue
            batch.append(decision)
            done += 1
            if len(batch) >= 8:
                write_counted(store, stage, stage_hash, result, batch)
                batch = []
            if on_progress:
                on_progress(done, len(candidates))
        write_counted(store, stage, stage_hash, result, batch)
    except BaseException as exc:
        # On Ctrl-C/SIGTERM drop the queued verdicts (pool.map queued them all) and do not wait for
        # those in flight; the calls already answered are in the store, so nothing is paid twice.
        pool.shutdown(wait=not isinstance(exc, KeyboardInterrupt), cancel_futures=True)
        raise
    pool.shutdown()


def settings_hash(upstream: str, *settings: Any) -> str:
    blob = json.dumps([upstream, *settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def generation_order(c: Candidate) -> tuple:
    return (c.round, c.task_key or "", c.item_index or 0, c.id)


def passed(store: Store, stage: str | None, stage_hash: str | None) -> list[Candidate]:
    """The generated candidates that `stage` kept under `stage_hash` (all of them when stage is None).

    In generation order (round, task, item), not insertion order: concurrent tasks finish in any
    order, and order-dependent stages (greedy dedup) must decide the same way on every run.
    """
    candidates = sorted((c for c in store.candidates() if c.origin == "lm"), key=generation_order)
    if stage is None:
        return candidates
    decisions = store.decisions(stage)
    return [c for c in candidates
            if (d := decisions.get(c.id)) is not None and d.settings_hash == stage_hash and d.kept]
