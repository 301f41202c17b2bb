"""Benchmark 3: fuzzy dedup of 1,000,000 rows, single process vs Ray.

Rows: the 55,185 real prompts of ../shared/bench/t0-prompts/, cycled and perturbed (a seeded mix of
dropped, repeated and swapped words and one-letter typos), so the set has the real prompts' own
near-duplication plus about 18 perturbed copies of each.

Method (both modes, the same code in `synthboot.engines.ray_minhash`, i.e. MinHashLayer's method in
blocks): word shingles, 128-permutation MinHash, LSH bands for threshold 0.85; each row is paired
with the row before it in every bucket it is in, and a pair counts when the signatures agree on at
least 85% of permutations. A row is a
duplicate when it has such a pair. `single` runs map, group-by and scoring one after the other in
one process; `ray` runs them as Ray tasks on a local cluster (2 CPUs here). Each mode runs in its own
process so peak memory (ru_maxrss) is its own.

    python bench/dedup_scale.py --rows 1000000            # both modes, one after the other
    python bench/dedup_scale.py --rows 1000000 --mode ray
    python bench/dedup_scale.py --rows 1000000 --mode layer   # the dedup stage's own default layer

`layer` runs what the dedup stage runs by default, `MinHashLayer(threshold=0.85).links` (its own LSH
parameters, up to 256 links per row per bucket, every candidate scored by exact Jaccard): on rows
made of clusters of near-copies it makes far more pairs, and needs far more memory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# $SYNTHBOOT_SHARED: the shared data folder when this checkout is not beside it (a git worktree).
PROMPTS = Path(os.environ.get("SYNTHBOOT_SHARED") or REPO.parent / "shared") / "bench" / "t0-prompts" / "t0_train_50k.jsonl.gz"


def rows(n: int, seed: int = 0) -> list[str]:
    with gzip.open(PROMPTS, "rt", encoding="utf-8") as fh:
        prompts = [json.loads(line)["prompt"] for line in fh]
    rng = random.Random(seed)
    out = prompts[:n]
    for i in range(len(out), n):
        words = prompts[i % len(prompts)].split()
        for _ in range(rng.randint(1, 4)):
            if len(words) < 3:
                break
            k = rng.randrange(len(words))
            edit = rng.random()
            if edit < 0.3:
                del words[k]
            elif edit < 0.5:
                words.insert(k, words[k])
            elif edit < 0.7:
                j = rng.randrange(len(words))
                words[k], words[j] = words[j], words[k]
            else:
                w = words[k]
                p = rng.randrange(len(w))
                words[k] = w[:p] + rng.choice("abcdefghijklmnopqrstuvwxyz") + w[p + 1:]
        out.append(" ".join(words))
    return out


def run_layer(n: int) -> dict:
    from synthboot.stages.dedup import MinHashLayer

    texts = rows(n)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    layer = MinHashLayer(threshold=0.85)
    started = time.perf_counter()
    links = layer.links(texts)
    wall = time.perf_counter() - started
    return {"mode": "layer", "rows": n, "wall_s": round(wall, 1),
            "duplicates": int(np.count_nonzero(np.diff(links.indptr))), "pairs": int(len(links.index)),
            "candidate_pairs": layer.timings["candidates"], "phases_s": layer.timings,
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "mb_before_dedup": round(before_mb), "bands_x_rows": [layer.bands, layer.rows]}


def run_mode(mode: str, n: int, cpus: int) -> dict:
    from datasketch.lsh import _optimal_param

    from synthboot.engines.ray_minhash import minhash_pairs
    from synthboot.stages.dedup import MinHashLayer

    texts = rows(n)
    # Fixed here (not read from MinHashLayer's defaults) so both modes always use the same LSH.
    bands, band_rows = _optimal_param(0.85, 128, 0.5, 0.5)
    layer = MinHashLayer(threshold=0.85, num_perm=128, seed=1, shingle="word", ngram=1, max_bucket=256)
    layer.bands, layer.rows = bands, band_rows
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats: dict = {}
    if mode == "ray":
        import ray

        started = time.perf_counter()
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=cpus,
                 object_store_memory=6 * 2**30, log_to_driver=False)
        startup = time.perf_counter() - started
    started = time.perf_counter()
    pairs = minhash_pairs(texts, layer, links=1, exact=False, run_local=(mode == "single"), stats=stats)
    wall = time.perf_counter() - started
    result = {"mode": mode, "rows": n, "wall_s": round(wall, 1), "duplicates": int(len(set(pairs[:, 0].astype(int).tolist()))),
              "pairs": int(len(pairs)), "candidate_pairs": stats.get("candidate_pairs"),
              "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "driver_mb_before_dedup": round(before_mb), "bands_x_rows": [layer.bands, layer.rows]}
    if mode == "ray":
        import ray

        result.update({"ray_startup_s": round(startup, 1), "worker_peak_mb": round(stats["worker_peak_mb"]),
                       "workers_cpus": cpus, "blocks": stats["blocks"], "partitions": stats["partitions"]})
        ray.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["single", "ray", "both", "layer"], default="both")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    if args.mode == "layer":
        print(json.dumps(run_layer(args.rows)), flush=True)
        return
    if args.mode != "both":
        print(json.dumps(run_mode(args.mode, args.rows, args.cpus)), flush=True)
        return
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    print("uptime:", uptime(), flush=True)
    for mode in ("single", "ray"):
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--mode", mode, "--cpus", str(args.cpus)],
                       check=True)
        print("uptime:", uptime(), flush=True)


if __name__ == "__main__":
    main()
