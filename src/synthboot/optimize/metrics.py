"""Metrics for the optimize loop: `(gold, pred, trace=None, pred_name=None, pred_trace=None) -> score`.

Every metric scores the fields the program outputs that the example has labels for, averaged
over those fields, in [0, 1]. Called with a `trace` (while an optimizer bootstraps demos) a
metric answers pass/fail against its threshold, as DSPy's own `SemanticF1` does; the five-argument
form is what GEPA requires, and DSPy's other optimizers pass only the first three.

- `exact_match`: DSPy's normalised exact match (`dspy.evaluate.metrics.em_score`).
- `token_f1`: DSPy's SQuAD-style token F1 (`dspy.evaluate.metrics.f1_score`).
- `embedding`: cosine similarity of the embedded MiniLM sentence embeddings (`synthboot.embeddings`).
- `semantic_f1`: DSPy's `SemanticF1` (an LM judges recall and precision of key ideas).
- `module:function`: any function `(gold, pred, trace=None) -> float | bool`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import dspy

from synthboot.errors import SynthbootError
from synthboot.schema import import_object

logger = logging.getLogger(__name__)
BUILTIN = ("exact_match", "token_f1", "embedding", "semantic_f1")


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


class FieldMetric:
    """A per-field score averaged over the compared fields; pass/fail at `threshold` under a trace."""

    def __init__(self, name: str, fields: Sequence[str], inputs: Sequence[str], threshold: float = 0.5):
        self.__name__ = name  # dspy.Evaluate names its column after this
        self.fields, self.inputs, self.threshold = list(fields), list(inputs), threshold

    def score_field(self, gold: dict[str, Any], field: str, expected: str, predicted: str) -> float:
        raise NotImplementedError

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        labels = gold.labels() if hasattr(gold, "labels") else gold
        fields = [f for f in self.fields if labels.get(f) is not None]
        if not fields:
            raise SynthbootError(f"the example has none of the compared fields {self.fields}")
        scores = [self.score_field(gold, f, _text(labels.get(f)), _text(pred.get(f) if hasattr(pred, "get")
                                                                         else getattr(pred, f, None)))
                  for f in fields]
        score = sum(scores) / len(scores)
        return score if trace is None else score >= self.threshold


class ExactMatch(FieldMetric):
    def score_field(self, gold, field, expected, predicted):
        from dspy.evaluate.metrics import em_score

        return float(em_score(predicted, expected))


class TokenF1(FieldMetric):
    def score_field(self, gold, field, expected, predicted):
        from dspy.evaluate.metrics import f1_score

        return float(f1_score(predicted, expected))


class EmbeddingSimilarity(FieldMetric):
    def __init__(self, *args, embedder: str = "local", **kwargs):
        super().__init__(*args, **kwargs)
        self.embedder = embedder

    def score_field(self, gold, field, expected, predicted):
        from synthboot.embeddings import get_embedder

        if not predicted.strip():
            return 0.0
        rows = get_embedder(self.embedder).encode([expected, predicted])
        return max(0.0, float(rows[0] @ rows[1]))


class SemanticF1Metric(FieldMetric):
    """DSPy's `SemanticF1`, fed the example's inputs as the question, run on the judge LM."""

    def __init__(self, *args, lm: dspy.LM, adapter: dspy.Adapter | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lm, self.adapter = lm, adapter
        self.judge = dspy.evaluate.SemanticF1(threshold=self.threshold)

    def score_field(self, gold, field, expected, predicted):
        if not predicted.strip():
            return 0.0
        question = "\n".join(f"{name}: {_text(gold.get(name))}" for name in self.inputs)
        settings = {"lm": self.lm} | ({"adapter": self.adapter} if self.adapter else {})
        try:
            with dspy.context(**settings):
                out = self.judge(dspy.Example(question=question, response=expected),
                                 dspy.Prediction(response=predicted))
        except Exception as exc:  # noqa: BLE001 - a verdict that does not parse scores 0, not a program failure
            logger.warning("semantic_f1 judge failed: %s: %s", type(exc).__name__, str(exc)[:200])
            return 0.0
        return float(out.score)


def make_metric(name: str, *, fields: Sequence[str], inputs: Sequence[str], threshold: float = 0.5,
                judge_lm: dspy.LM | None = None, judge_adapter: dspy.Adapter | None = None) -> Callable:
    """A metric by name (see the module docstring), scoring `fields`."""
    if name in ("exact_match", "em"):
        return ExactMatch("exact_match", fields, inputs, threshold)
    if name in ("token_f1", "f1"):
        return TokenF1("token_f1", fields, inputs, threshold)
    if name in ("embedding", "embedding_similarity"):
        return EmbeddingSimilarity("embedding", fields, inputs, threshold)
    if name == "semantic_f1":
        if judge_lm is None:
            raise SynthbootError("the semantic_f1 metric needs a judge LM")
        return SemanticF1Metric("semantic_f1", fields, inputs, threshold, lm=judge_lm, adapter=judge_adapter)
    if ":" in name:
        fn = import_object(name, what="function", field="--metric")
        if not callable(fn):
            raise SynthbootError(f"{name!r} is not callable")
        return custom_metric(fn, name)
    raise SynthbootError(f"unknown metric {name!r}; choose one of {', '.join(BUILTIN)} or `module:function`")


def custom_metric(fn: Callable, name: str) -> Callable:
    """A user's `(gold, pred, trace=None)` metric in the five-argument form every optimizer accepts."""
    try:
        takes_five = len(inspect.signature(fn).parameters) >= 5
    except (TypeError, ValueError):
        takes_five = False

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        if takes_five:
            return fn(gold, pred, trace, pred_name, pred_trace)
        return fn(gold, pred, trace)

    metric.__name__ = name.rpartition(":")[2]
    metric.gives_feedback = takes_five  # type: ignore[attr-defined]
    return metric


def as_float(value: Any) -> float:
    """A metric's return value as a number (bool, number, or DSPy's `ScoreWithFeedback`/Prediction)."""
    if hasattr(value, "score"):
        value = value.score
    return float(value)


def bootstrap_ci(values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of per-example scores (or of paired differences).

    Resampling the examples with replacement shows how much the mean would move on another draw
    of the same size: a gain whose interval spans 0 may be noise.
    """
    import numpy as np

    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(data.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
