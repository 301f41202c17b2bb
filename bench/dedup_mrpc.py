"""Duplicate-detection quality on MRPC (human-labelled paraphrase pairs): ROC-AUC, P/R at a threshold.

    python bench/dedup_mrpc.py [--mrpc ../shared/bench/mrpc/msr_paraphrase_train.txt]

Scores every pair with each detector synthboot's dedup layers use, then reports ROC-AUC, the
best-F1 threshold, and precision/recall at the default thresholds in spec.py.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

from synthboot.spec import MinHashSpec, SemanticSpec, WordOverlapSpec
from synthboot.stages.dedup import MinHashLayer, shingles

HERE = Path(__file__).resolve().parent
DEFAULT_MRPC = HERE.parent.parent / "shared" / "bench" / "mrpc" / "msr_paraphrase_train.txt"


def load(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    rows = [r for r in rows if len(r) == 5]
    return [r[3] for r in rows], [r[4] for r in rows], np.array([int(r[0]) for r in rows])


def word_overlap(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / max(len(x), len(y)) if x and y else 0.0


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def minhash_estimate(left: list[str], right: list[str], unit: str, n: int) -> np.ndarray:
    layer = MinHashLayer(0.5, 128, unit, n)
    sig = layer.signatures(*layer.shingle_matrix(left + right))  # num_perm x texts
    return (sig[:, : len(left)] == sig[:, len(left):]).mean(axis=0)


def report(name: str, scores: np.ndarray, labels: np.ndarray, default: float | None) -> dict:
    auc = roc_auc_score(labels, scores)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    row = {"detector": name, "roc_auc": auc, "best_f1": f1[best], "best_f1_threshold": thresholds[best]}
    # Precision >= 0.9: the highest-recall threshold that rarely removes a non-paraphrase.
    ok = np.flatnonzero(precision[:-1] >= 0.9)
    if len(ok):
        row["p90_threshold"], row["p90_recall"] = thresholds[ok[0]], recall[ok[0]]
    if default is not None:
        pred = scores >= default
        tp = int((pred & (labels == 1)).sum())
        row.update(default=default, precision=tp / max(1, pred.sum()), recall=tp / max(1, (labels == 1).sum()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mrpc", type=Path, default=DEFAULT_MRPC)
    parser.add_argument("--embedders", default="local,static")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    left, right, labels = load(args.mrpc)
    print(f"{len(labels)} pairs, {int(labels.sum())} paraphrases")
    rows = [report("word overlap (seed rule)", np.array([word_overlap(a, b) for a, b in zip(left, right)]), labels,
                   WordOverlapSpec().threshold)]
    for unit, n in (("word", 1), ("word", 2), ("char", 5)):
        exact = np.array([jaccard(shingles(a, unit, n), shingles(b, unit, n)) for a, b in zip(left, right)])
        default = MinHashSpec().threshold if (unit, n) == ("word", 1) else None
        rows.append(report(f"Jaccard exact, {unit} {n}-grams", exact, labels, default))
        rows.append(report(f"MinHash-128 Jaccard, {unit} {n}-grams", minhash_estimate(left, right, unit, n), labels,
                           default))
    from synthboot.embeddings import get_embedder

    for name in args.embedders.split(","):
        embedder = get_embedder(name)
        started = time.perf_counter()
        a, b = embedder.encode(left), embedder.encode(right)
        seconds = time.perf_counter() - started
        rows.append(report(f"cosine, {name} embedder ({2 * len(left) / seconds:.0f} texts/s)",
                           (a * b).sum(axis=1), labels, SemanticSpec().threshold))
        if name == "local":
            cosine = (a * b).sum(axis=1)
    # The layered default: a pair is a duplicate when MinHash or the semantic layer says so.
    jac = np.array([jaccard(shingles(x, "word", 1), shingles(y, "word", 1)) for x, y in zip(left, right)])
    if "cosine" in locals():
        pred = (jac >= MinHashSpec().threshold) | (cosine >= SemanticSpec().threshold)
        tp = int((pred & (labels == 1)).sum())
        rows.append({"detector": "layered defaults: exact Jaccard or local cosine", "precision": tp / max(1, pred.sum()),
                     "recall": tp / int(labels.sum()), "default": "both"})
    keys = ["roc_auc", "best_f1", "best_f1_threshold", "p90_threshold", "p90_recall", "default", "precision", "recall"]
    print("| detector | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row.get(k), (float, np.floating)) else str(row.get(k, "-"))
                 for k in keys]
        print(f"| {row['detector']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
