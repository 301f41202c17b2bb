"""Semantic dedup at size: static embeddings and the cells search (`synthboot.dedup.ivf`), with recall.

    python bench/dedup_semantic_scale.py --rows 1000000 --sample 2000
    python bench/dedup_semantic_scale.py --rows 55185 --sample 2000 --exact   # also the exact search, timed

Rows: `bench/dedup_scale.py`'s T0 rows (the 55,185 prompts, then cycled copies with 1-4 seeded word
edits), read from its JSONL file (written once). Reported, in CPU seconds (`time.process_time`)
and wall: the static embedding, each phase of the cells search, peak RSS (ru_maxrss), and on
`--sample` random rows the misses against exact search: for each sampled row every earlier row
at cosine >= threshold, found by brute force over all rows in blocks (the same vectors), against the
links found (each row lists at most k = 16):
- row recall: of the sampled rows with an exact earlier match, the share with a link (what decides
  whether a near-duplicate is removed);
- pair recall: links found among the exact matches / min(exact matches, k) summed over the sample.
The search is run twice, and the links compared, for repeatability (`--repeat 1` to skip).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_scale import rows_file  # noqa: E402


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def text_chunks(path: Path, size: int = 65_536):
    """The file's texts, `size` at a time: only the vectors of all rows are held, as a streamed pass would."""
    chunk: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            chunk.append(json.loads(line)["text"])
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def recall_on_sample(vectors: np.ndarray, i: np.ndarray, j: np.ndarray, threshold: float, k: int,
                     sample: int, seed: int = 0) -> dict:
    n = len(vectors)
    picked = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), size=min(sample, n - 1), replace=False))
    exact_of: dict[int, set[int]] = {r: set() for r in picked.tolist()}
    for lo in range(0, n, 65_536):  # a block of rows at a time: (sample x n) would not fit at 1M
        sims = vectors[picked] @ vectors[lo:lo + 65_536].T
        a, b = np.nonzero(sims >= threshold)
        for r, c in zip(picked[a].tolist(), (b + lo).tolist()):
            if c < r:
                exact_of[r].add(c)
    starts = np.searchsorted(i, picked, side="left")
    ends = np.searchsorted(i, picked, side="right")
    with_match = with_link = pairs_possible = pairs_found = 0
    for r, lo, hi in zip(picked.tolist(), starts.tolist(), ends.tolist()):
        exact = exact_of[r]
        found = set(j[lo:hi].tolist())
        if exact:
            with_match += 1
            with_link += bool(found)
        pairs_possible += min(len(exact), k)
        pairs_found += len(found & exact)
    return {"sample": len(picked), "rows_with_exact_match": with_match,
            "row_recall": round(with_link / max(1, with_match), 4),
            "pair_recall": round(pairs_found / max(1, pairs_possible), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument("--cells", type=int, default=0, help="0: the default for the size")
    parser.add_argument("--exact", action="store_true", help="also time the exact blocked search")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from synthboot.dedup.cosine import cosine_links
    from synthboot.dedup.ivf import ivf_links
    from synthboot.stages.dedup import SemanticLayer

    path = rows_file(args.rows)
    print(json.dumps({"uptime": uptime(), "rows": args.rows, "file": str(path)}), flush=True)
    layer = SemanticLayer(args.threshold, "static")
    layer.embed(["the model's load, not counted"])
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = np.concatenate([layer.embed(chunk) for chunk in text_chunks(path)])
    print(json.dumps({"phase": "embed", "cpu_s": round(time.process_time() - cpu, 1),
                      "wall_s": round(time.perf_counter() - wall, 1), "peak_mb": peak_mb(), "uptime": uptime()}),
          flush=True)
    runs = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(args.repeat):
            timings: dict[str, float] = {}
            wall, cpu = time.perf_counter(), time.process_time()
            runs.append(ivf_links(vectors, args.threshold, 16, probes=args.probes, cells=args.cells or None,
                                  timings=timings))
            print(json.dumps({"phase": "cells search", "cpu_s": round(time.process_time() - cpu, 1),
                              "wall_s": round(time.perf_counter() - wall, 1), "links": len(runs[-1][0]),
                              "rows_linked": int(len(np.unique(runs[-1][0]))), "timings": timings,
                              "peak_mb": peak_mb(), "uptime": uptime()}), flush=True)
        if args.exact:
            wall, cpu = time.perf_counter(), time.process_time()
            exact = cosine_links(vectors, args.threshold, 16)
            print(json.dumps({"phase": "exact search", "cpu_s": round(time.process_time() - cpu, 1),
                              "wall_s": round(time.perf_counter() - wall, 1), "links": len(exact[0]),
                              "rows_linked": int(len(np.unique(exact[0]))), "peak_mb": peak_mb()}), flush=True)
    if len(runs) > 1:
        same = all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
        print(json.dumps({"identical_runs": same}), flush=True)
    i, j, _ = runs[0]
    if args.sample:
        print(json.dumps({"recall": recall_on_sample(vectors, i, j, args.threshold, 16, args.sample),
                          "uptime": uptime()}), flush=True)


if __name__ == "__main__":
    main()
