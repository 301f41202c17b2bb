"""`synthboot check RUN --real FILE.jsonl`: measure a run's kept examples against real labelled rows.

What it reports (numbers from synthboot.check.metrics, on the packaged MiniLM embeddings of each
example's input fields):
- coverage and precision of the synthetic set against the real one (every task);
- for each enum output field (a classification task): the accuracy on the real rows of a fixed
  learner trained on the seeds alone, on the seeds plus the kept synthetic examples, and on the
  synthetic examples alone (train on synthetic, test on real); and label fidelity, the share of
  synthetic labels a classifier trained on the real rows agrees with.

The result is stored in the run (table `checks`) and shown by `synthboot report`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthboot.check import metrics as cm
from synthboot.errors import SynthbootError
from synthboot.importing import read_examples
from synthboot.schema import TaskSchema
from synthboot.stages.dedup import compare_text
from synthboot.store import Store, now
from synthboot.task import Task
from synthboot.view import DatasetView


@dataclass
class LabelCheck:
    """One enum output field, scored on the real rows that carry it."""

    field: str
    real_rows: int
    synthetic_rows: int
    seeds_accuracy: float | None  # the learner trained on the seeds alone
    combined_accuracy: float | None  # trained on the seeds plus the kept synthetic examples
    synthetic_accuracy: float | None  # trained on the synthetic examples alone
    fidelity: float | None  # share of synthetic labels a real-trained classifier agrees with
    real_agreement: float | None  # that classifier on held-out real rows: the ceiling for fidelity

    @property
    def gain(self) -> float | None:
        """What the synthetic examples add to the seeds, in accuracy on the real rows."""
        if self.seeds_accuracy is None or self.combined_accuracy is None:
            return None
        return self.combined_accuracy - self.seeds_accuracy


@dataclass
class CheckResult:
    real_file: str
    real_rows: int
    synthetic_rows: int  # the run's kept generated examples
    seed_rows: int
    embedder: str
    k: int
    coverage: float | None
    precision: float | None
    labels: list[LabelCheck] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CheckResult:
        return cls(**{**body, "labels": [LabelCheck(**label) for label in body.get("labels", [])]})

    def lines(self) -> list[str]:
        """The result in plain sentences (the CLI prints them)."""
        out = [f"{self.real_rows} real rows, {self.synthetic_rows} kept synthetic examples, {self.seed_rows} seeds "
               f"(embedder {self.embedder}, k={self.k})",
               f"coverage {_pct(self.coverage)}: real examples with a synthetic example within their {self.k}-NN radius",
               f"precision {_pct(self.precision)}: synthetic examples within some real example's {self.k}-NN radius"]
        for lc in self.labels:
            out.append(f"{lc.field}: accuracy on {lc.real_rows} real rows, learner trained on seeds "
                       f"{_pct(lc.seeds_accuracy)}, seeds + synthetic {_pct(lc.combined_accuracy)}, "
                       f"synthetic only {_pct(lc.synthetic_accuracy)}")
            out.append(f"{lc.field}: label fidelity {_pct(lc.fidelity)} of {lc.synthetic_rows} synthetic labels agree "
                       f"with a classifier trained on the real rows (which agrees with {_pct(lc.real_agreement)} "
                       "of held-out real labels)")
        return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def check_run(run_dir: str | Path, real_file: str | Path, *, k: int = 5, embedder: str = "local",
              save: bool = True) -> CheckResult:
    """Check a run's kept examples against the real rows of `real_file` (JSONL in the spec's fields)."""
    with Store(run_dir) as store:
        schema = Task.of(store.spec()).schema
        real = read_examples(real_file, schema)
        synthetic = [c.fields for c in DatasetView(store).kept() if c.fields]
        seeds = [c.fields for c in store.candidates(origin="seed") if c.fields]
        result = compare(schema, real, synthetic, seeds, k=k, embedder=embedder)
        result.real_file = str(real_file)
        if save:
            store.add_check(str(real_file), result.to_dict())
    return result


def compare(schema: TaskSchema, real: list[dict[str, Any]], synthetic: list[dict[str, Any]],
            seeds: list[dict[str, Any]], *, k: int = 5, embedder: str = "local") -> CheckResult:
    """The check's numbers for three sets of examples (each a dict of the task's fields)."""
    if k < 1:
        raise SynthbootError(f"k must be at least 1, not {k}")
    from synthboot.embeddings import get_embedder

    model = get_embedder(embedder)
    inputs = list(schema.inputs)

    def embed(rows: list[dict[str, Any]]) -> np.ndarray:
        return model.encode([compare_text(r, inputs) for r in rows])

    real_x, synth_x, seed_x = embed(real), embed(synthetic), embed(seeds)
    manifold = cm.coverage_precision(real_x, synth_x, k)
    result = CheckResult("", len(real), len(synthetic), len(seeds), embedder, manifold.k, manifold.coverage,
                         manifold.precision, created_at=now())
    for name in schema.enum_fields():
        if name in inputs:
            continue
        result.labels.append(_label_check(name, real, real_x, synthetic, synth_x, seeds, seed_x))
    return result


def _label_check(name: str, real: list[dict], real_x: np.ndarray, synthetic: list[dict], synth_x: np.ndarray,
                 seeds: list[dict], seed_x: np.ndarray) -> LabelCheck:
    def labelled(rows: list[dict], x: np.ndarray) -> tuple[np.ndarray, list[str]]:
        keep = [i for i, r in enumerate(rows) if r.get(name) is not None]
        return x[keep] if keep else x[:0], [str(rows[i][name]) for i in keep]

    rx, ry = labelled(real, real_x)
    sx, sy = labelled(synthetic, synth_x)
    dx, dy = labelled(seeds, seed_x)
    fidelity = cm.label_fidelity(rx, ry, sx, sy)
    return LabelCheck(
        field=name, real_rows=len(ry), synthetic_rows=len(sy),
        seeds_accuracy=cm.accuracy(dx, dy, rx, ry),
        combined_accuracy=cm.accuracy(np.vstack([dx, sx]), dy + sy, rx, ry),
        synthetic_accuracy=cm.accuracy(sx, sy, rx, ry),
        fidelity=fidelity.synthetic, real_agreement=fidelity.real)


def stored_checks(store: Store) -> list[CheckResult]:
    """The run's checks, oldest first."""
    return [CheckResult.from_dict(record.result) for record in store.checks()]
