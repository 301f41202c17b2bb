"""MinHash signatures: the layer's numpy code against rensa's Rust bulk API, on the same input.

    pip install rensa==0.5.0     # not a synthboot dependency: this comparison is why
    python bench/minhash_rensa.py

Input: the first 50,000 T0 prompts' word shingles as content hashes (`MinHashLayer.shingle_matrix`),
one flat uint64 buffer with row offsets, 128 permutations. Reported: CPU seconds of
`MinHashLayer.signature_rows` and of `rensa.RMinHash.digest_matrix_from_flat_token_hashes` with and
without `to_rows()` (the only way to read its result), three times; and each one's mean absolute
error against the exact Jaccard on the layer's candidate pairs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_t0 import DEFAULT_DATA, load  # noqa: E402

from synthboot.stages.dedup import MinHashLayer, exact_jaccard  # noqa: E402


def main() -> None:
    import rensa

    texts = load(DEFAULT_DATA)[:50_000]
    layer = MinHashLayer(0.85)
    matrix, hashes = layer.shingle_matrix(texts)
    flat, offsets = np.ascontiguousarray(hashes[matrix.indices]), matrix.indptr.astype(np.uint64)
    for _ in range(3):
        cpu = time.process_time()
        sig = layer.signature_rows(matrix, hashes)
        ours = time.process_time() - cpu
        cpu = time.process_time()
        digests = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, 128, 1)
        theirs = time.process_time() - cpu
        rows = np.array(digests.to_rows(), dtype=np.uint64)
        with_rows = time.process_time() - cpu
        print(f"numpy signature_rows {ours:.2f}s CPU; rensa digest {theirs:.2f}s, with to_rows {with_rows:.2f}s")
    pairs = layer.candidate_pairs(sig, np.flatnonzero(np.diff(matrix.indptr)))[:200_000]
    truth = exact_jaccard(matrix, pairs[:, 0], pairs[:, 1])
    for name, s in (("numpy", sig), ("rensa", rows)):
        estimate = (s[pairs[:, 0]] == s[pairs[:, 1]]).mean(axis=1)
        print(f"{name}: mean abs error vs exact Jaccard {np.abs(estimate - truth).mean():.4f} on {len(pairs)} pairs")


if __name__ == "__main__":
    main()
