"""Fuzzy dedup at size: MinHash LSH on the 55,185 T0 prompts vs exact all-pairs Jaccard ground truth.

    python bench/dedup_t0.py --threshold 0.85      # the baselines' threshold
    python bench/dedup_t0.py --threshold 0.6       # synthboot's default

Ground truth: every pair of prompts whose word sets (the MinHash layer's shingles) have Jaccard >=
threshold, found exactly by prefix filtering (Bayardo et al., "Scaling up all pairs similarity
search", 2007): with tokens ordered rarest first, two sets with Jaccard >= t share a token among
the first |x| - ceil(t|x|) + 1 of each; candidates sharing one are verified exactly. Computed once
and cached (under $SYNTHBOOT_HOME/bench, default /tmp/synthboot-bench).

Reported: wall time of `MinHashLayer.links` (shingling, signatures, LSH, exact scoring) and of the
whole greedy dedup; pair recall (true pairs found / true pairs), item recall (texts with a true
partner that the layer links to some partner), precision (found pairs that are true).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

from synthboot.stages.dedup import ExactLayer, MinHashLayer, dedup_texts

HERE = Path(__file__).resolve().parent
# $SYNTHBOOT_SHARED: the shared data folder when this checkout is not beside it (a git worktree).
DEFAULT_DATA = Path(os.environ.get("SYNTHBOOT_SHARED") or HERE.parent.parent / "shared") / "bench" / "t0-prompts" / "t0_train_50k.jsonl.gz"


def load(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["prompt"] for line in fh]


def exact_pairs(matrix: csr_matrix, threshold: float) -> np.ndarray:
    """All (i, j), j < i, with Jaccard >= threshold, by prefix filtering and exact verification."""
    n = matrix.shape[0]
    sizes = np.diff(matrix.indptr)
    freq = np.bincount(matrix.indices, minlength=matrix.shape[1])
    rank = np.empty_like(freq)
    rank[np.argsort(freq, kind="stable")] = np.arange(len(freq))  # rarest token first
    rows, cols = [], []
    for i in range(n):
        tokens = matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]]
        if len(tokens) == 0:
            continue
        prefix = len(tokens) - math.ceil(threshold * len(tokens)) + 1
        rows.append(np.full(prefix, i, dtype=np.int64)), cols.append(tokens[np.argsort(rank[tokens])[:prefix]])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    prefixes = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=matrix.shape)
    found = []
    for lo in range(0, n, 4096):  # candidates: pairs sharing a prefix token
        block = (prefixes[lo:lo + 4096] @ prefixes.T).tocoo()
        i, j = block.row + lo, block.col
        keep = (j < i) & (np.minimum(sizes[i], sizes[j]) >= threshold * np.maximum(sizes[i], sizes[j]))
        i, j = i[keep], j[keep]
        for k in range(0, len(i), 200_000):
            a, b = i[k:k + 200_000], j[k:k + 200_000]
            inter = np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()
            ok = inter / (sizes[a] + sizes[b] - inter) >= threshold
            found.append(np.stack([a[ok], b[ok]], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def ground_truth(texts: list[str], threshold: float, cache_dir: Path) -> np.ndarray:
    cache = cache_dir / f"t0_truth_{len(texts)}_{threshold:g}.npy"
    if cache.exists():
        return np.load(cache)
    started = time.perf_counter()
    pairs = exact_pairs(MinHashLayer(threshold).shingle_matrix(texts)[0], threshold)
    print(f"ground truth: {len(pairs)} pairs in {time.perf_counter() - started:.1f}s (cached at {cache})")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, pairs)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    texts = load(args.data)[: args.limit]
    cache_dir = Path(os.environ.get("SYNTHBOOT_HOME") or "/tmp/synthboot-bench") / "bench"
    truth = ground_truth(texts, args.threshold, cache_dir)
    n = len(texts)
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")

    layer = MinHashLayer(args.threshold, args.num_perm)
    started, cpu = time.perf_counter(), time.process_time()
    links = layer.links(texts)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    found_i = np.repeat(np.arange(n), np.diff(links.indptr))
    found = set((found_i * n + links.index).tolist())
    true = set((truth[:, 0].astype(np.int64) * n + truth[:, 1]).tolist())  # int64: n*n overflows int32
    hit = len(found & true)
    true_items = set(truth.ravel().tolist())
    found_items = set(found_i.tolist()) | set(links.index.tolist())

    started = time.perf_counter()
    outcome = dedup_texts(list(enumerate(texts)), [ExactLayer(), MinHashLayer(args.threshold, args.num_perm)])
    dedup_seconds = time.perf_counter() - started
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"texts {n}; threshold {args.threshold}; num_perm {args.num_perm} (bands {layer.bands} x rows {layer.rows})")
    print(f"MinHashLayer.links: {seconds:.2f}s wall, {cpu:.2f}s CPU (phases: {layer.timings}); true pairs {len(true)}, found {len(found)}, "
          f"pair recall {hit / max(1, len(true)):.4f}, precision {hit / max(1, len(found)):.4f}, "
          f"item recall {len(true_items & found_items) / max(1, len(true_items)):.4f}")
    print(f"greedy dedup (exact + minhash): {dedup_seconds:.2f}s, {len(outcome.removed)} removed, "
          f"{len(outcome.kept)} kept; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
