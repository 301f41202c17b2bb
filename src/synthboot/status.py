"""What a run holds, read from its store: the funnel, reasons, splits, calls, diversity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synthboot.coverage import source_coverage
from synthboot.spec import Spec
from synthboot.stages.diversity import DiversityReport, measure, with_recorded
from synthboot.stages.split import WARNINGS_META as SPLIT_WARNINGS_META
from synthboot.store import Candidate, Store, lock_holder
from synthboot.view import DatasetView


@dataclass
class Funnel:
    generated: int = 0
    parsed: int = 0
    schema_valid: int = 0
    rule_valid: int = 0
    unique: int = 0
    grounded: int = 0
    verified: int = 0
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
    unpriced: int = 0  # calls to a model whose price is unknown: `cost` leaves them out
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
    coverage: list | None = None  # synthboot.coverage.DocumentCoverage per document, when the spec has sources
    # Verify's agreement per checked output field (synthboot.verify_stats.FieldAgreement).
    verify_agreement: list = field(default_factory=list)
    subtopics: list[str] | None = None  # the topics the LM proposed (synthboot.stages.subtopics)
    split_warnings: list[str] = field(default_factory=list)  # an empty split, strata too small (stages.split)
    rule_errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # custom rule -> (times raised, message)
    running: str | None = None  # the process running on the run directory now ('pid N'), if any

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
    """Each generated candidate -> (stage it stopped at or 'kept' or 'pending', reason): the dataset
    view's outcomes (synthboot.view); `reviews=False` gives the filters' own verdicts."""
    view = DatasetView(store)
    return dict(view.outcomes if reviews else view.filter_outcomes)


def kept_candidates(store: Store) -> list[Candidate]:
    """The kept generated candidates, with reviewers' edits in place of the generated fields."""
    return DatasetView(store).kept()


def run_status(run_dir: str | Path) -> RunStatus:
    with Store(run_dir, readonly=True) as store:
        spec = store.find_spec()
        view = DatasetView(store)
        outcomes = view.outcomes
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
        funnel.grounded = funnel.rule_valid - sum(funnel.rejected.get("grounding", Counter()).values()) \
            - _pending_at(outcomes, "grounding")
        funnel.unique = funnel.grounded - sum(funnel.rejected.get("dedup", Counter()).values()) \
            - _pending_at(outcomes, "dedup")
        funnel.verified = funnel.unique - sum(funnel.rejected.get("verify", Counter()).values()) \
            - _pending_at(outcomes, "verify")
        funnel.judged_ok = funnel.verified - sum(funnel.rejected.get("judge", Counter()).values()) \
            - _pending_at(outcomes, "judge")
        funnel.kept = sum(1 for s, _ in outcomes.values() if s == "kept")
        funnel.splits = +view.split_counts()
        calls = _call_stats(store)
        kept = view.kept()
        diversity = with_recorded(measure(kept, spec), store, spec, kept) if spec else None
        from synthboot.topup import META_KEY as TOPUP_META  # late: topup imports DSPy (seconds to load)

        topup = store.get_meta(TOPUP_META)
        split_warnings = store.get_meta(SPLIT_WARNINGS_META, []) or []
        subtopics = store.subtopics()
        rule_errors = _rule_errors(store)
        failed = store.failed_task_count()
        optimization: list = []
        # Only for runs that were optimized: the optimize module imports DSPy (seconds to load).
        if store.optimize_runs("done"):
            from synthboot.optimize_reports import optimize_reports

            optimization = optimize_reports(store)
        coverage = source_coverage(store, {c.id for c in kept}) if spec and spec.sources else None
        from synthboot.verify_stats import field_agreement

        agreement = field_agreement(store)
    return RunStatus(Path(run_dir), spec, funnel, calls, diversity, failed, optimization=optimization,
                     topup=topup, verify_agreement=agreement, split_warnings=split_warnings,
                     rule_errors=rule_errors, running=lock_holder(run_dir), coverage=coverage, subtopics=subtopics)


def _rule_errors(store: Store) -> dict[str, tuple[int, str]]:
    """Custom rules that raised, from each candidate's latest validate decision: rule -> (count, first message)."""
    out: dict[str, tuple[int, str]] = {}
    for decision in store.decisions("validate").values():
        for rule, message in ((decision.details or {}).get("rule_errors") or {}).items():
            count, first = out.get(rule, (0, message))
            out[rule] = (count + 1, first)
    return out


def _pending_at(outcomes: Mapping[int, tuple[str, str | None]], stage: str) -> int:
    return sum(1 for s, r in outcomes.values() if s == "pending" and r == stage)


def _call_stats(store: Store) -> CallStats:
    total = store.call_totals()[0]
    stats = CallStats(calls=total.calls, prompt_tokens=total.prompt_tokens, completion_tokens=total.completion_tokens,
                      latency_s=total.latency_s, cost=total.cost,
                      unpriced=total.unpriced_calls)
    stats.failures = sum(store.failure_counts().values())
    stats.retried_attempts = sum(store.attempt_failure_counts(retried_only=True).values())
    stats.by_purpose = {t.name or "other": t.calls for t in store.call_totals("purpose")}
    return stats
