"""What a run holds, read from its store: the funnel, reasons, splits, calls, diversity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synthboot.spec import Spec
from synthboot.stages import FILTER_STAGES
from synthboot.stages.diversity import DiversityReport, measure
from synthboot.store import Candidate, Store


@dataclass
class Funnel:
    generated: int = 0
    parsed: int = 0
    schema_valid: int = 0
    rule_valid: int = 0
    unique: int = 0
    judged_ok: int = 0
    kept: int = 0
    pending: int = 0
    rejected: dict[str, Counter] = field(default_factory=dict)  # stage -> reason -> count
    splits: Counter = field(default_factory=Counter)
    seeds: int = 0


@dataclass
class CallStats:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    failures: int = 0
    by_purpose: dict[str, int] = field(default_factory=dict)


@dataclass
class RunStatus:
    run_dir: Path
    spec: Spec | None
    funnel: Funnel
    calls: CallStats
    diversity: DiversityReport | None
    tasks_failed: int = 0


def candidate_outcomes(store: Store) -> dict[int, tuple[str, str | None]]:
    """Each generated candidate -> (stage it stopped at or 'kept' or 'pending', reason)."""
    hashes = store.get_meta("stage_hashes", {}) or {}
    decisions = {stage: store.decisions(stage) for stage in FILTER_STAGES}
    out: dict[int, tuple[str, str | None]] = {}
    for cand in store.candidates(origin="lm"):
        outcome: tuple[str, str | None] = ("kept", None)
        for stage in FILTER_STAGES:
            d = decisions[stage].get(cand.id)
            if d is None or d["settings_hash"] != hashes.get(stage):
                outcome = ("pending", stage)
                break
            if not d["kept"]:
                outcome = (stage, d["reason"])
                break
        out[cand.id] = outcome
    return out


def kept_candidates(store: Store) -> list[Candidate]:
    outcomes = candidate_outcomes(store)
    return [c for c in store.candidates(origin="lm") if outcomes.get(c.id, ("",))[0] == "kept"]


def run_status(run_dir: str | Path) -> RunStatus:
    with Store(run_dir) as store:
        body = store.latest_spec()
        spec = Spec.model_validate(body) if body else None
        outcomes = candidate_outcomes(store)
        funnel = Funnel(generated=len(outcomes), seeds=len(store.candidates(origin="seed")))
        for stage, reason in outcomes.values():
            if stage == "pending":
                funnel.pending += 1
            elif stage != "kept":
                funnel.rejected.setdefault(stage, Counter())[reason or "rejected"] += 1
        validate_rejects = funnel.rejected.get("validate", Counter())
        funnel.parsed = funnel.generated - validate_rejects.get("parse_error", 0)
        funnel.schema_valid = funnel.parsed - validate_rejects.get("schema_error", 0)
        funnel.rule_valid = funnel.generated - sum(validate_rejects.values()) - _pending_at(outcomes, "validate")
        funnel.unique = funnel.rule_valid - sum(funnel.rejected.get("dedup", Counter()).values()) \
            - _pending_at(outcomes, "dedup")
        funnel.judged_ok = funnel.unique - sum(funnel.rejected.get("judge", Counter()).values()) \
            - _pending_at(outcomes, "judge")
        funnel.kept = sum(1 for s, _ in outcomes.values() if s == "kept")
        funnel.splits = Counter(r["split"] for r in store.splits().values())
        calls = _call_stats(store)
        kept = [c for c in store.candidates(origin="lm") if outcomes[c.id][0] == "kept"]
        diversity = measure(kept, spec) if spec else None
        failed = store.query("SELECT COUNT(*) FROM tasks WHERE status = 'failed'")[0][0]
    return RunStatus(Path(run_dir), spec, funnel, calls, diversity, failed)


def _pending_at(outcomes: dict[int, tuple[str, str | None]], stage: str) -> int:
    return sum(1 for s, r in outcomes.values() if s == "pending" and r == stage)


def _call_stats(store: Store) -> CallStats:
    row = store.query("SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
                      " COALESCE(SUM(latency_s),0), COALESCE(SUM(cost),0) FROM lm_calls")[0]
    stats = CallStats(calls=row[0], prompt_tokens=row[1], completion_tokens=row[2], latency_s=row[3], cost=row[4])
    stats.failures = store.query("SELECT COUNT(*) FROM lm_failures")[0][0]
    stats.by_purpose = {r[0] or "other": r[1] for r in
                        store.query("SELECT purpose, COUNT(*) FROM lm_calls GROUP BY purpose")}
    return stats
