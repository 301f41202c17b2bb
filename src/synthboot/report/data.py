"""Everything the report shows, read from the run store into plain values (no HTML here)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages.diversity import diversity_field, measure
from synthboot.status import RunStatus, run_status
from synthboot.store import Store
from synthboot.view import SPLITS, DatasetView
from synthboot.task import Task


@dataclass
class Row:
    """One candidate (generated, or a seed) with everything decided about it."""

    id: int
    origin: str
    topic: str
    fields: dict[str, Any] | None
    raw: str | None
    outcome: str  # 'kept', 'pending', 'seed', or the stage that rejected it
    reason: str | None
    detail: str | None = None
    score: float | None = None  # the judge's
    matched_id: int | None = None  # the example a duplicate matched
    similarity: float | None = None
    split: str | None = None
    review: str | None = None
    reviewer: str | None = None
    filter_outcome: str | None = None  # what the automatic filters decided, before any review
    filter_reason: str | None = None

    def text(self, names: list[str]) -> str:
        if self.fields is None:
            return self.raw or ""
        return "\n".join(f"{n}: {self.fields.get(n, '')}" for n in names if n in self.fields)


@dataclass
class Cluster:
    kept: Row
    absorbed: list[Row]


@dataclass
class CallGroup:
    name: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost: float | None  # None when some call's price is unknown
    failures: int = 0

    @property
    def mean_latency_s(self) -> float:
        return self.latency_s / self.calls if self.calls else 0.0


@dataclass
class Disagreement:
    """A candidate verify rejected: the field, what the generator wrote and what the check found."""

    id: int
    reason: str
    field: str
    generated: Any
    found: Any  # the verifier's prediction, or the label the neighbours voted for


@dataclass
class ReportData:
    run_dir: Path
    spec: Spec
    schema: TaskSchema
    status: RunStatus
    rows: list[Row]
    clusters: list[Cluster]
    by_stage: list[CallGroup]
    by_model: list[CallGroup]
    split_distributions: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # split->field->counts
    optimize: list[Any] = field(default_factory=list)  # synthboot.optimize.OptimizeReport
    checks: list[Any] = field(default_factory=list)  # synthboot.check.CheckResult, latest per real file
    disagreements: list[Disagreement] = field(default_factory=list)  # verify's rejections, both values

    @property
    def names(self) -> list[str]:
        return self.schema.names


def collect(run_dir: str | Path) -> ReportData:
    status = run_status(run_dir)
    if status.spec is None:
        from synthboot.errors import SynthbootError

        raise SynthbootError(f"{run_dir} has no spec yet: run `synthboot run` first")
    spec = status.spec
    schema = Task.of(spec).schema
    with Store(run_dir, readonly=True) as store:
        view = DatasetView(store)
        rows = candidate_rows(store, view)
        by_id = {r.id: r for r in rows}
        clusters = _clusters(rows, by_id)
        by_stage = _call_groups(store, "purpose")
        by_model = _call_groups(store, "model")
        split_distributions = _split_distributions(view, spec)
        optimize = _optimize(store)
        disagreements = _disagreements(store)
        checks = _checks(store)
    return ReportData(Path(run_dir), spec, schema, status, rows, clusters, by_stage, by_model,
                      split_distributions, optimize, checks=checks, disagreements=disagreements)


def _disagreements(store: Store, limit: int = 200) -> list[Disagreement]:
    current = (store.get_meta("stage_hashes", {}) or {}).get("verify")
    out = []
    for cid, d in sorted(store.decisions("verify").items()):
        if d.kept or d.settings_hash != current or not d.details or ":" not in (d.reason or ""):
            continue
        details = d.details
        name = (d.reason or "").partition(":")[2]
        lm_field = ((details.get("lm") or {}).get("fields") or {}).get(name)
        if lm_field is not None:
            out.append(Disagreement(cid, d.reason or "", name, lm_field.get("generated"), lm_field.get("predicted")))
        elif (vote := details.get("label_vote")) is not None:
            out.append(Disagreement(cid, d.reason or "", name, vote.get("label"),
                                    vote.get("vote") or vote.get("other_label")))
        if len(out) >= limit:
            break
    return out


def candidate_rows(store: Store, view: DatasetView | None = None) -> list[Row]:
    """Every candidate (seeds too) with its outcome, reason, verdict, duplicate match, split and review."""
    view = view or DatasetView(store)
    outcomes, by_filters = view.outcomes, view.filter_outcomes
    dedup, judge = store.decisions("dedup"), store.decisions("judge")
    validate = store.decisions("validate")
    reviews = view.reviews
    rows = []
    for c in view.candidates:
        stage, reason = outcomes.get(c.id, ("seed" if c.origin != "lm" else "pending", None))
        row = Row(c.id, c.origin, c.topic or "(none)", c.fields, c.raw, stage, reason)
        row.filter_outcome, row.filter_reason = by_filters.get(c.id, (stage, reason))
        if (d := dedup.get(c.id)) is not None and not d.kept:
            row.matched_id, row.similarity = d.matched_id, d.score
        if (d := judge.get(c.id)) is not None:
            row.score = d.score
            details = d.details or {}
            row.detail = details.get("reasoning") or details.get("error")
        if row.filter_outcome == "validate" and (d := validate.get(c.id)) is not None and d.details:
            row.detail = _short(d.details)
        if c.parse_error and row.detail is None:
            row.detail = c.parse_error
        row.split = view.split_of.get(c.id)
        if (r := reviews.get(c.id)) is not None:
            row.review, row.reviewer = r.decision, r.reviewer
            if r.decision == "edit":
                row.fields = r.fields
        rows.append(row)
    return rows


def _short(details: dict[str, Any]) -> str:
    if "failures" in details:
        return "; ".join(f"{k}: {v}" for k, v in details["failures"].items())
    if "errors" in details:
        return "; ".join(details["errors"])
    return str(details.get("error") or details)


def _clusters(rows: list[Row], by_id: dict[int, Row]) -> list[Cluster]:
    groups: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        if r.outcome == "dedup" and r.matched_id is not None:
            groups[r.matched_id].append(r)
    clusters = [Cluster(by_id[k], sorted(v, key=lambda r: -(r.similarity or 0)))
                for k, v in groups.items() if k in by_id]
    return sorted(clusters, key=lambda c: (-len(c.absorbed), c.kept.id))


def _call_groups(store: Store, column: Literal["purpose", "model"]) -> list[CallGroup]:
    failures = store.failure_counts(column)
    groups = [CallGroup(t.name or "other", t.calls, t.prompt_tokens, t.completion_tokens, t.latency_s,
                        None if t.unpriced_calls else t.cost, failures.pop(t.name, 0))
              for t in store.call_totals(column)]
    groups += [CallGroup(name or "other", 0, 0, 0, 0.0, 0.0, n) for name, n in failures.items()]
    return groups


def _split_distributions(view: DatasetView, spec: Spec) -> dict[str, dict[str, dict[str, int]]]:
    """Per split, each field's value counts over the split's members (synthboot.view)."""
    return {name: measure([m.candidate for m in view.members[name]], spec).distributions for name in SPLITS}


def _optimize(store: Store) -> list[Any]:
    try:
        from synthboot.optimize_reports import optimize_reports
    except ImportError:
        return []
    return optimize_reports(store)


def _checks(store: Store) -> list[Any]:
    """The latest check against each real file (`synthboot check`)."""
    from synthboot.check import stored_checks

    latest = {c.real_file: c for c in stored_checks(store)}
    return list(latest.values())


def main_field(data: ReportData) -> str | None:
    """The enum field whose mix matters most (the diversity field), for split breakdowns."""
    return diversity_field(data.spec, data.schema) or next(iter(data.schema.enum_fields()), None)
