"""Semantic dedup at size: the 55,185 T0 prompts through the semantic layer on the CPU.

    python bench/dedup_semantic.py --embedder static        # model2vec distilled from MiniLM
    python bench/dedup_semantic.py --embedder local --limit 5000   # MiniLM itself

Reports the embedding time, the nearest-neighbour (usearch HNSW) time, the links found, and peak
memory (ru_maxrss of this process). The static model is built offline on first use and cached
under $SYNTHBOOT_HOME/models; its build time is reported separately and is not in the figure.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedder", default="static")
    parser.add_argument("--threshold", type=float, default=SemanticSpec().threshold)
    parser.add_argument("--limit", type=int, default=None)
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
    links = layer.links_from_vectors(vectors, [not t.strip() for t in texts])
    done = time.perf_counter()
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    linked = int((np.diff(links.indptr) > 0).sum())
    print(f"texts {len(texts)}; embed {embedded - started:.1f}s ({len(texts) / (embedded - started):.0f} texts/s, "
          f"dim {vectors.shape[1]}); neighbours+links {done - embedded:.1f}s; total {done - started:.1f}s; "
          f"{linked} texts with an earlier one at cosine >= {args.threshold}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
