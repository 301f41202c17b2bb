"""MinHash LSH on Ray: signatures per block, band buckets as a distributed group-by, then scoring.

The method of `stages.dedup.MinHashLayer` (bands and rows from datasketch's optimiser, bucket-mates
scored before they count), laid out so no process holds all the data:

1. map (a task per block of texts): shingles -> 32-bit ids (crc32, so a row's signature needs no
   global vocabulary) -> signatures (128 multiply-shift hashes, minimum per row) -> a bucket key per band; each (band, key, row) triple goes to
   one of R partitions by its key;
2. reduce (a task per partition): sort by (band, key); each row is paired with the first `links`
   rows of its bucket (the earliest ones; all of them for buckets up to `links` + 1 rows);
3. score (tasks over the pairs): exact Jaccard from the rows' shingle ids, or the signatures'
   agreement (`exact=False`), both read from Ray's object store without copying on one node.

`run_local=True` runs the same three steps in this process, one after the other: the single-process
baseline the benchmark compares with. The pairs can differ from `MinHashLayer`'s only where LSH's
recall differs (shingles are hashed differently); a pair counts only at or above the threshold.
"""

from __future__ import annotations

import resource
import zlib
from typing import Any

import numpy as np

_ROWS_PER_CHUNK = 256  # rows whose shingles x permutations are gathered at once: bounded memory


def _params(layer: Any) -> dict[str, Any]:
    return {"num_perm": layer.num_perm, "bands": layer.bands, "rows": layer.rows, "seed": layer.seed,
            "shingle": layer.shingle, "ngram": layer.ngram}


def map_block(texts: list[str], start: int, p: dict[str, Any], partitions: int) -> tuple:
    """One block -> ((shingle ids, offsets, signatures), peak MB, *R partitions of (band, key, row) triples)."""
    from synthboot.stages.dedup import shingles

    ids = [np.unique(np.fromiter((zlib.crc32(s.encode()) for s in shingles(t, p["shingle"], p["ngram"])),
                                 dtype=np.uint64)) for t in texts]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint64)
    # Multiply-shift hashing ((a*x + b) mod 2**64, top 32 bits) of each distinct shingle of the
    # block, computed once: no modulo, and far fewer distinct shingles than occurrences.
    rng = np.random.default_rng(p["seed"])
    a = rng.integers(1, 2**63, size=p["num_perm"], dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=p["num_perm"], dtype=np.uint64)
    mult = np.random.default_rng(p["seed"] + 1).integers(1, 2**63 - 1, size=p["rows"], dtype=np.uint64)
    mult |= np.uint64(1)
    distinct, where = np.unique(flat, return_inverse=True)
    table = ((distinct[:, None] * a + b) >> np.uint64(32)).astype(np.uint32)
    # Each row's minimum over its shingles, for rows of similar length at a time padded to the
    # longest with an all-max sentinel: one vectorised min (np.minimum.reduceat is ~8x slower here).
    table = np.vstack([table, np.full((1, p["num_perm"]), np.iinfo(np.uint32).max, dtype=np.uint32)])
    sig = np.full((len(texts), p["num_perm"]), np.iinfo(np.uint32).max, dtype=np.uint32)
    nonempty = np.flatnonzero(lengths)
    by_length = nonempty[np.argsort(lengths[nonempty], kind="stable")]
    for c in range(0, len(by_length), _ROWS_PER_CHUNK):
        rows = by_length[c:c + _ROWS_PER_CHUNK]
        width = int(lengths[rows].max())
        filled = np.arange(width) < lengths[rows][:, None]
        index = np.full((len(rows), width), len(distinct))
        index[filled] = where[(offsets[rows][:, None] + np.arange(width))[filled]]
        sig[rows] = table[index].min(axis=1)
    keys = np.stack([(sig[nonempty, k * p["rows"]:(k + 1) * p["rows"]].astype(np.uint64) * mult).sum(axis=1)
                     for k in range(p["bands"])], axis=1)  # wraps mod 2**64, as in MinHashLayer
    triples = np.stack([np.tile(np.arange(p["bands"], dtype=np.uint64), len(nonempty)), keys.reshape(-1),
                        np.repeat((nonempty + start).astype(np.uint64), p["bands"])], axis=1)
    part = ((triples[:, 1] ^ (triples[:, 0] * np.uint64(0x9E3779B97F4A7C15))) % np.uint64(partitions)).astype(np.int64)
    return ((flat, offsets, sig), _peak_mb(), *[triples[part == r] for r in range(partitions)])


def reduce_partition(links: int, *parts: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows sharing a (band, key) bucket -> unique (row, earlier row) pairs, each row with its bucket's first `links`."""
    triples = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.uint64)
    if len(triples) == 0:
        return np.zeros((0, 2), dtype=np.int64), _peak_mb()
    t = triples[np.lexsort((triples[:, 2], triples[:, 1], triples[:, 0]))]
    same = (t[1:, 0] == t[:-1, 0]) & (t[1:, 1] == t[:-1, 1])
    group_start = np.flatnonzero(np.r_[True, ~same])
    group_of = np.cumsum(np.r_[True, ~same]) - 1
    rank = np.arange(len(t)) - group_start[group_of]  # position within the bucket, by row id
    rows = t[:, 2].astype(np.int64)
    found = []
    for k in range(min(links, int(rank.max()))):  # pair each row with the bucket's k-th row
        later = np.flatnonzero(rank > k)
        found.append(np.stack([rows[later], rows[group_start[group_of[later]] + k]], axis=1))
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 2), dtype=np.int64)
    return pairs, _peak_mb()


def score_pairs(pairs: np.ndarray, threshold: float, block_size: int, exact: bool, *blocks: Any) -> tuple:
    """The pairs scoring at or above `threshold`, as an (k, 3) float64 array (row, earlier row, score).

    `blocks` are the map blocks' (shingle ids, offsets, signatures). The signatures' agreement is the
    score (`exact=False`) or, as in MinHashLayer, a generous first cut before the exact Jaccard.
    """
    if len(pairs) == 0:
        return np.zeros((0, 3)), _peak_mb()
    bi, bj = pairs[:, 0] // block_size, pairs[:, 1] // block_size
    scores = np.zeros(len(pairs))
    for x in np.unique(bi):
        for y in np.unique(bj[bi == x]):
            sel = np.flatnonzero((bi == x) & (bj == y))
            left = blocks[x][2][pairs[sel, 0] % block_size]
            right = blocks[y][2][pairs[sel, 1] % block_size]
            scores[sel] = (left == right).mean(axis=1)
    if exact:
        for n in np.flatnonzero(scores >= threshold - 0.2):
            i, j = int(pairs[n, 0]), int(pairs[n, 1])
            fi, oi, _ = blocks[i // block_size]
            fj, oj, _ = blocks[j // block_size]
            a = fi[oi[i % block_size]:oi[i % block_size + 1]]
            b = fj[oj[j % block_size]:oj[j % block_size + 1]]
            inter = len(np.intersect1d(a, b, assume_unique=True))
            scores[n] = inter / (len(a) + len(b) - inter)
    keep = scores >= threshold
    return np.column_stack([pairs[keep], scores[keep]]).astype(np.float64), _peak_mb()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minhash_pairs(texts: list[str], layer: Any, *, links: int | None = None, exact: bool = True,
                  blocks: int | None = None, partitions: int | None = None, run_local: bool = False,
                  stats: dict | None = None) -> np.ndarray:
    """Duplicate pairs (row, earlier row, score) at or above `layer.threshold`, as a (k, 3) array."""
    links = layer.max_bucket if links is None else links
    p = _params(layer)
    if run_local:
        cpus, get, put = 1, (lambda x: x), (lambda x: x)
        remote = lambda fn, n: fn  # noqa: E731
    else:
        import ray

        cpus, get, put = max(1, int(ray.cluster_resources().get("CPU", 1))), ray.get, ray.put
        remote = lambda fn, n: ray.remote(num_cpus=1, num_returns=n)(fn).remote  # noqa: E731
    blocks = blocks or max(cpus * 4, -(-len(texts) // 50_000))
    partitions = partitions or cpus * 2
    block_size = max(1, -(-len(texts) // blocks))
    mapped = [remote(map_block, 2 + partitions)(texts[s:s + block_size], s, p, partitions)
              for s in range(0, len(texts), block_size)]
    reduced = [remote(reduce_partition, 2)(links, *[m[2 + r] for m in mapped]) for r in range(partitions)]
    pairs = [get(r[0]) for r in reduced]
    pairs = np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), dtype=np.int64)
    chunks = np.array_split(pairs, max(1, cpus * 2)) if len(pairs) else []
    scored = [remote(score_pairs, 2)(put(c), layer.threshold, block_size, exact, *[m[0] for m in mapped]) for c in chunks]
    found = [get(s[0]) for s in scored]
    if stats is not None:
        stats["worker_peak_mb"] = max([get(m[1]) for m in mapped] + [get(r[1]) for r in reduced]
                                      + [get(s[1]) for s in scored], default=0.0)
        stats["candidate_pairs"] = int(len(pairs))
        stats["blocks"], stats["partitions"] = len(mapped), partitions
    return np.concatenate(found) if found else np.zeros((0, 3))


def minhash_candidates(texts: list[str], layer: Any, **kwargs: Any) -> list[list[tuple[int, float]]]:
    """`MinHashLayer.candidates` computed on the cluster: for each text, the earlier texts it duplicates."""
    out: list[list[tuple[int, float]]] = [[] for _ in texts]
    for i, j, score in minhash_pairs(texts, layer, **kwargs).tolist():
        out[int(i)].append((int(j), score))
    for hits in out:
        hits.sort(key=lambda h: (-h[1], h[0]))
    return out
