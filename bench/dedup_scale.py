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

`cli` runs `synthboot dedup FILE --field text --method minhash --threshold 0.85` as a user does
(process start to exit, under /usr/bin/time for CPU and peak memory) on files of each size in
`--curve`, written once under $SYNTHBOOT_HOME/bench (default /tmp/synthboot-bench); with
`--baseline-src DIR` the same command with another checkout's code first on the path (sizes up to
`--baseline-max`), and a plain per-item datasketch MinHashLSH loop over the first `--datasketch`
rows in the same run. `--sample N` then checks the largest run's removals on N random rows
against exact Jaccard (`recall_on_sample`).

    python bench/dedup_scale.py --mode cli --curve 55185,250000,500000,1000000 \
        --baseline-src /tmp/synthboot-main/src --baseline-max 250000 --datasketch 100000 --sample 400
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
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


def bench_dir() -> Path:
    return Path(os.environ.get("SYNTHBOOT_HOME") or "/tmp/synthboot-bench") / "bench"


def rows_file(n: int) -> Path:
    """The n rows as JSONL ({"id", "text"}), written once."""
    path = bench_dir() / f"t0_rows_{n}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for k, text in enumerate(rows(n)):
                fh.write(json.dumps({"id": k, "text": text}) + "\n")
        tmp.replace(path)
    return path


CLI_ARGS = "--method minhash --threshold 0.85"


def run_cli(path: Path, src: Path | None, cli_args: str = CLI_ARGS) -> dict:
    """`synthboot dedup` on the file in a fresh process: wall, CPU and peak RSS from /usr/bin/time."""
    out = path.with_name(path.stem + (".kept-baseline" if src else ".kept") + ".jsonl")
    env = dict(os.environ, PYTHONPATH=str(src or REPO / "src"))
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "synthboot.cli", "dedup", str(path),
                           "--field", "text", *cli_args.split(), "--out", str(out)],
                          capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    stats = dict(line.strip().split(": ", 1) for line in done.stderr.splitlines() if ": " in line)
    return {"code": "baseline" if src else "this", "args": cli_args, "rows": sum(1 for _ in open(path, "rb")), "wall_s": round(wall, 1),
            "cpu_s": round(float(stats["User time (seconds)"]) + float(stats["System time (seconds)"]), 1),
            "peak_mb": round(int(stats["Maximum resident set size (kbytes)"]) / 1024),
            "output": done.stdout.strip().split(" in ")[0], "kept_file": str(out)}


def datasketch_loop(n: int) -> dict:
    """The issue's yardstick: one MinHash per row (word sets), query the LSH, insert if no match."""
    from datasketch import MinHash, MinHashLSH

    texts = rows(n)
    started, cpu = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(threshold=0.85, num_perm=128)
    removed = 0
    for k, text in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([w.encode() for w in set(re.findall(r"\w+", text.lower()))])
        if lsh.query(m):
            removed += 1
        else:
            lsh.insert(k, m)
    return {"code": "datasketch loop", "rows": n, "wall_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "removed": removed}


def recall_on_sample(n: int, kept_file: Path, sample: int, seed: int = 0) -> dict:
    """On `sample` random rows of the n, against exact Jaccard over all earlier rows:
    - decision recall: of the rows that have an earlier *kept* row at Jaccard >= 0.85 (what the
      greedy removes for), the share removed; precision: of the sampled rows removed, the share
      that truly have one;
    - pair recall: of all (row, earlier row) pairs at Jaccard >= 0.85, the share sharing an LSH
      bucket (the candidate step's recall; the streaming pass pairs rows with kept rows only).
    """
    from synthboot.stages.dedup import MinHashLayer

    texts = rows(n)
    kept = np.zeros(n, dtype=bool)
    with open(kept_file, encoding="utf-8") as fh:
        for line in fh:
            kept[json.loads(line)["id"]] = True
    picked = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), size=sample, replace=False))
    layer = MinHashLayer(threshold=0.85)
    has_kept_match = np.zeros(sample, dtype=bool)
    true_pairs = shared_pairs = 0
    step = 100_000
    for lo in range(0, int(picked[-1]), step):
        block = texts[lo:lo + step]
        matrix, hashes = layer.shingle_matrix([texts[r] for r in picked] + block)
        sig = layer.signature_rows(matrix, hashes)
        keys = np.stack([layer.band_keys(sig, b) for b in range(layer.bands)], axis=1)
        a, b = matrix[:sample], matrix[sample:]
        inter = (a @ b.T).toarray()
        sizes_a, sizes_b = np.asarray(a.sum(axis=1)).ravel(), np.asarray(b.sum(axis=1)).ravel()
        jac = inter / np.maximum(1, sizes_a[:, None] + sizes_b[None, :] - inter)
        earlier = (lo + np.arange(len(block)))[None, :] < picked[:, None]
        hit = (jac >= 0.85) & earlier & (sizes_a[:, None] > 0)
        has_kept_match |= (hit & kept[lo:lo + len(block)][None, :]).any(axis=1)
        si, sj = np.nonzero(hit)
        true_pairs += len(si)
        shared_pairs += int((keys[si] == keys[sample + sj]).any(axis=1).sum())
    removed = ~kept[picked]
    return {"sample_rows": sample, "rows_with_an_earlier_kept_match": int(has_kept_match.sum()),
            "decision_recall": round(float((removed & has_kept_match).sum() / max(1, has_kept_match.sum())), 4),
            "decision_precision": round(float((removed & has_kept_match).sum() / max(1, removed.sum())), 4),
            "true_pairs": true_pairs, "pair_recall_lsh": round(shared_pairs / max(1, true_pairs), 4)}


def run_cli_curve(args: argparse.Namespace) -> None:
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    sizes = [int(x) for x in args.curve.split(",")]
    for n in sizes:
        path = rows_file(n)
        for cli_args in args.cli_args:
            if args.baseline_src and n <= args.baseline_max:
                print(json.dumps({"uptime": uptime(), **run_cli(path, Path(args.baseline_src), cli_args)}), flush=True)
            print(json.dumps({"uptime": uptime(), **run_cli(path, None, cli_args)}), flush=True)
    if args.datasketch:
        print(json.dumps({"uptime": uptime(), **datasketch_loop(args.datasketch)}), flush=True)
    if args.sample:
        n = sizes[-1]
        kept = rows_file(n).with_name(rows_file(n).stem + ".kept.jsonl")
        print(json.dumps({"uptime": uptime(), "rows": n, **recall_on_sample(n, kept, args.sample)}), flush=True)
    print("uptime:", uptime(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["single", "ray", "both", "layer", "cli"], default="both")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--curve", default="55185,250000,500000,1000000", help="cli: row counts, comma-separated")
    parser.add_argument("--baseline-src", default=None, help="cli: another checkout's src/ to compare with")
    parser.add_argument("--baseline-max", type=int, default=250_000, help="cli: largest size for the baseline")
    parser.add_argument("--datasketch", type=int, default=0, help="cli: rows for the datasketch loop (0: skip)")
    parser.add_argument("--sample", type=int, default=0, help="cli: rows whose removals are checked exactly")
    parser.add_argument("--cli-args", action="append", default=None,
                        help=f"cli: the dedup options, repeatable (default {CLI_ARGS!r})")
    args = parser.parse_args()
    args.cli_args = args.cli_args or [CLI_ARGS]
    if args.mode == "cli":
        run_cli_curve(args)
        return
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
