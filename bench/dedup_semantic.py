"""Semantic dedup at size: the 55,185 T0 prompts through the semantic layer on the CPU.

    python bench/dedup_semantic.py --embedder static        # model2vec distilled from MiniLM
    python bench/dedup_semantic.py --embedder local --limit 5000   # MiniLM itself

Reports the embedding time, the exact blocked search's time (`synthboot.dedup.cosine`), the links found,
and peak memory (ru_maxrss of this process); the search is run twice to check that identical runs
give identical links. `--baseline-hnsw` also runs the approximate usearch HNSW index the layer
used before (k = 16, as it was) on the same vectors, three times, for its time, its run-to-run
differences and its misses against the exact links. The static model is built offline on first
use and cached under $SYNTHBOOT_HOME/models; its build time is reported separately and is not in
the figure.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_t0 import DEFAULT_DATA, load  # noqa: E402

from synthboot.embeddings import get_embedder  # noqa: E402
from synthboot.spec import SemanticSpec  # noqa: E402
from synthboot.stages.dedup import SemanticLayer  # noqa: E402


def pairs_of(links) -> set[tuple[int, int]]:
    rows = np.repeat(np.arange(len(links.indptr) - 1), np.diff(links.indptr))
    return set(zip(rows.tolist(), links.index.tolist()))


def hnsw_pairs(vectors: np.ndarray, threshold: float, k: int) -> set[tuple[int, int]]:
    """The layer's former search: each vector's k+1 nearest by usearch's HNSW, earlier ones above the threshold."""
    from usearch.index import Index

    index = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(len(vectors)), vectors)
    found = index.search(vectors, k + 1)
    keys, sims = found.keys.astype(np.int64), 1.0 - found.distances
    rows = np.broadcast_to(np.arange(len(vectors))[:, None], keys.shape)
    ok = (keys < rows) & (keys >= 0) & (sims >= threshold)
    return set(zip(rows[ok].tolist(), keys[ok].tolist()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedder", default="static")
    parser.add_argument("--threshold", type=float, default=SemanticSpec().threshold)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--baseline-hnsw", action="store_true")
    args = parser.parse_args()
    texts = load(DEFAULT_DATA)[: args.limit]
    started = time.perf_counter()
    get_embedder(args.embedder)
    print(f"embedder {args.embedder!r} ready in {time.perf_counter() - started:.1f}s (model load or first build)")
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    layer = SemanticLayer(args.threshold, args.embedder)
    started = time.perf_counter()
    vectors = layer.embed(texts)
    embedded = time.perf_counter()
    cpu = time.process_time()
    links = layer.links_from_vectors(vectors, [not t.strip() for t in texts])
    done, cpu = time.perf_counter(), time.process_time() - cpu
    again = layer.links_from_vectors(vectors, [not t.strip() for t in texts])
    same = all(np.array_equal(getattr(links, f), getattr(again, f)) for f in ("indptr", "index", "score"))
    print(f"exact search: {done - embedded:.1f}s wall, {cpu:.1f}s CPU; second run identical: {same}")
    if args.baseline_hnsw:
        exact = pairs_of(links)
        for run in range(3):
            started_hnsw, cpu = time.perf_counter(), time.process_time()
            found = hnsw_pairs(vectors, args.threshold, k=16)
            print(f"usearch HNSW run {run + 1}: {time.perf_counter() - started_hnsw:.1f}s wall, "
                  f"{time.process_time() - cpu:.1f}s CPU; {len(found)} links, of the exact ones missed "
                  f"{len(exact - found)} ({len(exact - found) / max(1, len(exact)):.4f}), not in the exact "
                  f"top-16 {len(found - exact)}, rows with a link {len({i for i, _ in found})} "
                  f"(exact: {len({i for i, _ in exact})})")
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    linked = int((np.diff(links.indptr) > 0).sum())
    print(f"texts {len(texts)}; embed {embedded - started:.1f}s ({len(texts) / (embedded - started):.0f} texts/s, "
          f"dim {vectors.shape[1]}); neighbours+links {done - embedded:.1f}s; total {done - started:.1f}s; "
          f"{linked} texts with an earlier one at cosine >= {args.threshold}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
