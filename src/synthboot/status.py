"""What a run holds, read from its store: the funnel, reasons, splits, calls, diversity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synthboot.spec import Spec
from synthboot.stages import FILTER_STAGES
from synthboot.stages.diversity import DiversityReport, measure, with_recorded
from synthboot.topup import META_KEY as TOPUP_META
from synthboot.reviews import REJECTED_REASON, latest_reviews, with_edits
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
    retried_attempts: int = 0  # failed attempts that were retried (synthboot.lm.failures)
    by_purpose: dict[str, int] = field(default_factory=dict)


@dataclass
class RunStatus:
    run_dir: Path
    spec: Spec | None
    funnel: Funnel
    calls: CallStats
    diversity: DiversityReport | None
    tasks_failed: int = 0
    # Finished optimize runs (synthboot.optimize.OptimizeReport), oldest first.
    optimization: list = field(default_factory=list)
    topup: dict | None = None  # synthboot.topup.TopUpResult as stored, when the spec sets `count`

    def _repr_html_(self) -> str:  # Jupyter
        from synthboot.notebook import status_html

        return status_html(self)

    @property
    def dedup_by_layer(self) -> dict[str, int]:
        """Removals per dedup layer (every enabled layer listed, zero included)."""
        from synthboot.stages.dedup import make_layers

        counts = {layer.name: 0 for layer in make_layers(self.spec)} if self.spec else {}
        for reason, n in self.funnel.rejected.get("dedup", Counter()).items():
            layer = (reason or "").removeprefix("duplicate:")
            counts[layer] = counts.get(layer, 0) + n
        return counts


def candidate_outcomes(store: Store, *, reviews: bool = True) -> dict[int, tuple[str, str | None]]:
    """Each generated candidate -> (stage it stopped at or 'kept' or 'pending', reason).

    A human review decision outranks the filters: accepted or edited is ('kept', 'review:accepted'
    or 'review:edited'), rejected is ('review', 'review:rejected'). `reviews=False` gives the
    filters' own verdicts.
    """
    hashes = store.get_meta("stage_hashes", {}) or {}
    decisions = {stage: store.decisions(stage) for stage in FILTER_STAGES}
    reviews = latest_reviews(store) if reviews else {}
    out: dict[int, tuple[str, str | None]] = {}
    for cand in store.candidates(origin="lm"):
        if (review := reviews.get(cand.id)) is not None:
            out[cand.id] = ("kept", f"review:{review.decision}ed") if review.keeps else ("review", REJECTED_REASON)
            continue
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
    """The kept generated candidates, with reviewers' edits in place of the generated fields."""
    outcomes = candidate_outcomes(store)
    reviews = latest_reviews(store)
    return [with_edits(c, reviews) for c in store.candidates(origin="lm") if outcomes.get(c.id, ("",))[0] == "kept"]


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
        kept = kept_candidates(store)
        diversity = with_recorded(measure(kept, spec), store, spec, kept) if spec else None
        topup = store.get_meta(TOPUP_META)
        failed = store.query("SELECT COUNT(*) FROM tasks WHERE status = 'failed'")[0][0]
        from synthboot.optimize import optimize_reports  # late: optimize reads candidate_outcomes here

        optimization = optimize_reports(store)
    return RunStatus(Path(run_dir), spec, funnel, calls, diversity, failed, optimization=optimization,
                     topup=topup)


def _pending_at(outcomes: dict[int, tuple[str, str | None]], stage: str) -> int:
    return sum(1 for s, r in outcomes.values() if s == "pending" and r == stage)


def _call_stats(store: Store) -> CallStats:
    row = store.query("SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
                      " COALESCE(SUM(latency_s),0), COALESCE(SUM(cost),0) FROM lm_calls")[0]
    stats = CallStats(calls=row[0], prompt_tokens=row[1], completion_tokens=row[2], latency_s=row[3], cost=row[4])
    stats.failures = store.query("SELECT COUNT(*) FROM lm_failures")[0][0]
    stats.retried_attempts = store.query("SELECT COUNT(*) FROM lm_attempt_failures WHERE retried = 1")[0][0]
    stats.by_purpose = {r[0] or "other": r[1] for r in
                        store.query("SELECT purpose, COUNT(*) FROM lm_calls GROUP BY purpose")}
    return stats
