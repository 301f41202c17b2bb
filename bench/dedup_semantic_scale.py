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

`--mode cli` runs `synthboot dedup FILE --field text --method semantic` as a user does (process
start to exit, under /usr/bin/time: wall, CPU, peak RSS) on the files of each size in `--curve`,
`--repeat` times (the kept files compared byte for byte), and with `--baseline-src DIR` the same
command with another checkout's code first on the path, sizes up to `--baseline-max`. Then, for
the largest size, on `--sample` random rows against brute force over the kept rows (the command's
own output): decision recall (of the sampled rows that have an earlier *kept* row at cosine >=
threshold, what the greedy removes for, the share removed) and precision (of the sampled rows
removed, the share that have one), for this code and for the baseline when it ran at that size.

    python bench/dedup_semantic_scale.py --mode cli --curve 55185,250000,500000,1000000 \
        --baseline-src /work/main/src --baseline-max 250000 --sample 2000

`--mode stream --rows N` runs the streamed pass in-process for its CPU per phase; with `--exact`
also with one cell (every kept row compared), and counts the removals both make.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_scale import REPO, bench_dir, rows_file  # noqa: E402


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


def run_cli(path: Path, src: Path | None, tag: str) -> dict:
    """`synthboot dedup FILE --field text --method semantic` in a fresh process, under /usr/bin/time -v."""
    out = bench_dir() / "semantic" / f"{path.stem}.{tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(src or REPO / "src"))
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "synthboot.cli", "dedup", str(path),
                           "--field", "text", "--method", "semantic", "--out", str(out)],
                          capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    stats = dict(line.strip().split(": ", 1) for line in done.stderr.splitlines() if ": " in line)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    return {"code": "baseline" if src else "this", "rows": int(path.stem.rsplit("_", 1)[1]), "wall_s": round(wall, 1),
            "cpu_s": round(float(stats["User time (seconds)"]) + float(stats["System time (seconds)"]), 1),
            "user_s": float(stats["User time (seconds)"]), "sys_s": float(stats["System time (seconds)"]),
            "peak_mb": round(int(stats["Maximum resident set size (kbytes)"]) / 1024),
            "output": done.stdout.strip().split(" in ")[0], "kept_sha256": digest, "kept_file": str(out)}


def decision_recall(path: Path, kept_file: Path, sample: int, threshold: float, seed: int = 0) -> dict:
    """On `sample` random rows: brute force over every earlier kept row (the command's output)."""
    from synthboot.stages.dedup import SemanticLayer

    kept_ids = []
    with open(kept_file, encoding="utf-8") as fh:
        for line in fh:
            kept_ids.append(json.loads(line)["id"])
    kept_ids_arr = np.array(kept_ids, dtype=np.int64)
    n = int(path.stem.rsplit("_", 1)[1])
    picked = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), size=min(sample, n - 1), replace=False))
    want = set(picked.tolist()) | set(kept_ids)
    texts: dict[int, str] = {}
    with open(path, encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            if k in want:
                texts[k] = json.loads(line)["text"]
    layer = SemanticLayer(threshold, "static")
    kept_vectors = layer.embed([texts[k] for k in kept_ids])
    sample_vectors = layer.embed([texts[k] for k in picked.tolist()])
    has_match = np.zeros(len(picked), dtype=bool)
    for lo in range(0, len(kept_ids_arr), 65_536):
        sims = sample_vectors @ kept_vectors[lo:lo + 65_536].T
        earlier = kept_ids_arr[None, lo:lo + 65_536] < picked[:, None]
        has_match |= ((sims >= threshold) & earlier).any(axis=1)
    removed = ~np.isin(picked, kept_ids_arr)
    return {"sample_rows": len(picked), "rows_with_an_earlier_kept_match": int(has_match.sum()),
            "removed_in_sample": int(removed.sum()),
            "decision_recall": round(float((removed & has_match).sum() / max(1, has_match.sum())), 4),
            "decision_precision": round(float((removed & has_match).sum() / max(1, removed.sum())), 4),
            "missed": int((~removed & has_match).sum())}


def run_stream(args: argparse.Namespace) -> None:
    """The streamed pass in-process (`StreamingSemantic`, chunks of 65,536 texts): CPU per phase; with
    `--exact`, the same pass with one cell holding every kept row (exact search) and the removals compared."""
    from synthboot.dedup.semantic_stream import PROBES, StreamingSemantic
    from synthboot.stages.dedup import SemanticLayer

    path = rows_file(args.rows)
    runs = []
    for exact in ([False, True] if args.exact else [False]):
        dedup = StreamingSemantic(SemanticLayer(args.threshold, "static"), probes=args.probes or PROBES,
                                  **({"exact_kept": 10**12} if exact else {}))
        dedup.layer.embed(["the model's load, not counted"])
        wall, cpu = time.perf_counter(), time.process_time()
        removed: dict = {}
        for chunk in text_chunks(path):
            removed.update(dedup.add(chunk))
        runs.append(removed)
        print(json.dumps({"uptime": uptime(), "rows": args.rows, "search": "exact (one cell)" if exact else "cells",
                          "cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
                          "removed": len(removed), "kept": dedup.kept, "timings": dedup.timings,
                          "cells": 0 if dedup._centroids is None else len(dedup._centroids), "peak_mb": peak_mb()}),
              flush=True)
    if len(runs) == 2:
        cells, exact_removed = set(runs[0]), set(runs[1])
        print(json.dumps({"removed_by_both": len(cells & exact_removed), "only_cells": len(cells - exact_removed),
                          "only_exact": len(exact_removed - cells),
                          "recall_vs_exact": round(len(cells & exact_removed) / max(1, len(exact_removed)), 5),
                          "same_match": sum(runs[0][r][1] == runs[1][r][1] for r in cells & exact_removed)}),
              flush=True)


def run_cli_curve(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.curve.split(",")]
    last: dict[str, dict] = {}
    for n in sizes:
        path = rows_file(n)
        if args.baseline_src and n <= args.baseline_max:
            last["baseline"] = {"uptime": uptime(), **run_cli(path, Path(args.baseline_src), "baseline")}
            print(json.dumps(last["baseline"]), flush=True)
        digests = []
        for attempt in range(max(1, args.repeat)):
            last["this"] = {"uptime": uptime(), "run": attempt + 1, **run_cli(path, None, f"this{attempt + 1}")}
            digests.append(last["this"]["kept_sha256"])
            print(json.dumps(last["this"]), flush=True)
        print(json.dumps({"rows": n, "identical_reruns": len(set(digests)) == 1, "runs": len(digests)}), flush=True)
    if args.sample:
        path = rows_file(sizes[-1])
        for code, run in last.items():
            if run["rows"] == sizes[-1]:
                print(json.dumps({"uptime": uptime(), "code": code, "rows": run["rows"],
                                  **decision_recall(path, Path(run["kept_file"]), args.sample, args.threshold)}),
                      flush=True)
    print("uptime:", uptime(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["search", "cli", "stream"], default="search")
    parser.add_argument("--curve", default="55185,250000,500000,1000000", help="cli: row counts, comma-separated")
    parser.add_argument("--baseline-src", default=None, help="cli: another checkout's src/ to compare with")
    parser.add_argument("--baseline-max", type=int, default=250_000, help="cli: largest size for the baseline")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--probes", type=int, default=0, help="cells searched per row (0: 8 for the search, "
                                                                "the streamed pass's default for --mode stream)")
    parser.add_argument("--cells", type=int, default=0, help="0: the default for the size")
    parser.add_argument("--exact", action="store_true", help="also time the exact blocked search")
    args = parser.parse_args()
    if args.mode == "cli":
        run_cli_curve(args)
        return
    if args.mode == "stream":
        run_stream(args)
        return
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
            runs.append(ivf_links(vectors, args.threshold, 16, probes=args.probes or 8, cells=args.cells or None,
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
