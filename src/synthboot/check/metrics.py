"""How synthetic data compares with real data, in embedding space: the numbers behind `synthboot check`.

Plain functions over unit-length embedding rows (see synthboot.embeddings), so benchmarks can
reuse them with their own train/test parts:

- `accuracy`: a fixed cheap learner (logistic regression on the embeddings) trained on one set
  and scored on another: train on synthetic, test on real.
- `label_fidelity`: how often a classifier trained on the real rows agrees with the synthetic
  labels, cross-fitted so no row is scored by a model trained on itself (or on its copy).
- `coverage_precision`: the share of real examples with a synthetic neighbour and of synthetic
  examples with a real neighbour, within each real example's k-nearest-neighbour radius
  (coverage as in Naeem et al. 2020, precision as in Kynkäänniemi et al. 2019).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The fixed learner. Embeddings are unit-length, so the default C=1.0 regularises them into
# near-uniform predictions on a handful of examples; C=10 fits a few seeds per label.
LEARNER_C = 10.0
CHUNK = 1024  # rows per block of a pairwise similarity matrix


class Learner:
    """Logistic regression on embeddings; a single training label is predicted as a constant."""

    def __init__(self, vectors: np.ndarray, labels: Sequence[str]):
        self.labels = sorted(set(labels))
        self.model = None
        if len(self.labels) > 1:
            from sklearn.linear_model import LogisticRegression

            self.model = LogisticRegression(C=LEARNER_C, max_iter=2000)
            self.model.fit(vectors, list(labels))

    def predict(self, vectors: np.ndarray) -> list[str]:
        if self.model is None:
            return [self.labels[0]] * len(vectors)
        return [str(p) for p in self.model.predict(vectors)]


def accuracy(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str]) -> float | None:
    """Share of the test rows the learner trained on (train_x, train_y) labels right; None without data."""
    if len(train_y) == 0 or len(test_y) == 0:
        return None
    predicted = Learner(train_x, train_y).predict(test_x)
    return float(np.mean([p == t for p, t in zip(predicted, test_y)]))


@dataclass(frozen=True)
class Fidelity:
    synthetic: float | None  # share of synthetic labels the real-trained classifier agrees with
    real: float | None  # the same classifiers on the real rows (cross-fitted): the ceiling to read it against
    folds: int


def label_fidelity(real_x: np.ndarray, real_y: Sequence[str], synth_x: np.ndarray, synth_y: Sequence[str],
                   *, max_folds: int = 5, seed: int = 0) -> Fidelity:
    """Cross-fitted agreement of classifiers trained on the real rows with the synthetic labels.

    The real rows are cut into stratified folds, one classifier per fold trained on the others.
    A real row is scored by the classifier that did not see it; a synthetic row by the classifier
    that did not see its nearest real row, so a copy of a real row cannot vouch for itself.
    """
    counts = Counter(real_y)
    if len(real_y) < 4 or len(counts) < 2:
        return Fidelity(None, None, 0)
    folds = max(2, min(max_folds, min(counts.values())))
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if min(counts.values()) >= folds
                else KFold(folds, shuffle=True, random_state=seed))
    real_y = list(real_y)
    fold_of = np.zeros(len(real_y), dtype=int)
    learners = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few rows per label is this function's normal case
        for f, (train, held) in enumerate(splitter.split(real_x, real_y)):
            fold_of[held] = f
            learners.append(Learner(real_x[train], [real_y[i] for i in train]))
    real_agreement = _agreement(learners, fold_of, real_x, real_y)
    synthetic = None
    if len(synth_y):
        synthetic = _agreement(learners, fold_of[nearest_index(synth_x, real_x)], synth_x, list(synth_y))
    return Fidelity(synthetic, real_agreement, folds)


def _agreement(learners: list[Learner], fold: np.ndarray, x: np.ndarray, y: list[str]) -> float:
    """Share of rows whose label the learner of their fold predicts."""
    hits = 0
    for f, learner in enumerate(learners):
        rows = np.flatnonzero(fold == f)
        if len(rows):
            hits += sum(p == y[i] for p, i in zip(learner.predict(x[rows]), rows))
    return hits / len(y)


def nearest_index(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each query, the index of its most similar row (cosine on unit vectors)."""
    out = np.empty(len(queries), dtype=int)
    for start in range(0, len(queries), CHUNK):
        out[start:start + CHUNK] = np.argmax(queries[start:start + CHUNK] @ rows.T, axis=1)
    return out


def knn_radii(rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's cosine distance to its k-th nearest other row."""
    radii = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), CHUNK):
        sims = rows[start:start + CHUNK] @ rows.T
        idx = np.arange(start, min(start + CHUNK, len(rows)))
        sims[idx - start, idx] = -np.inf  # not its own neighbour
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
        radii[start:start + CHUNK] = 1.0 - kth
    return radii


@dataclass(frozen=True)
class Manifold:
    coverage: float | None  # share of real examples with a synthetic example within their radius
    precision: float | None  # share of synthetic examples within some real example's radius
    k: int
    median_radius: float | None


def coverage_precision(real_x: np.ndarray, synth_x: np.ndarray, k: int = 5) -> Manifold:
    """Coverage and precision of the synthetic rows against the real ones at the real k-NN radii."""
    k = min(k, len(real_x) - 1)
    if k < 1:
        return Manifold(None, None, 0, None)
    radii = knn_radii(real_x, k)
    if len(synth_x) == 0:
        return Manifold(0.0, None, k, float(np.median(radii)))
    covered = np.zeros(len(real_x), dtype=bool)
    inside = np.zeros(len(synth_x), dtype=bool)
    for start in range(0, len(synth_x), CHUNK):
        dist = 1.0 - synth_x[start:start + CHUNK] @ real_x.T  # synthetic x real
        within = dist <= radii[None, :] + 1e-6
        inside[start:start + CHUNK] = within.any(axis=1)
        covered |= within.any(axis=0)
    return Manifold(float(covered.mean()), float(inside.mean()), k, float(np.median(radii)))
