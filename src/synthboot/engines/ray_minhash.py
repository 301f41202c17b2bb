"""MinHash LSH on Ray: signatures per block, band buckets as a distributed group-by, then scoring.

The very method of `stages.dedup.MinHashLayer`, laid out so no process holds all the data, and
with the same result:

1. map (a task per block of texts): the layer's own shingles and signatures for the block. A
   shingle's hashes come from its content (`tokens.content_hashes`), not from a corpus-wide
   numbering, so a block's signatures are exactly those the whole corpus gets in one process.
   Then a bucket key per band (the layer's formula); each (band, key, row) triple goes to one of
   R partitions by its key;
2. reduce (a task per partition): sort by (band, key, row); each row is paired with the up to
   `max_bucket` rows before it in its bucket (`dedup._bucket_mates`, as the layer does);
3. score (tasks over the pairs): the layer's signature pre-filter, then the exact Jaccard of the
   rows' shingle sets (their content hashes), both read from Ray's object store.

So the pairs and scores equal `MinHashLayer.links` on the same texts (tests/test_ray.py checks
it), barring a collision of two distinct shingles' 64-bit hashes. `run_local=True` runs the same
three steps in this process: the single-process baseline the benchmark compares with.
"""

from __future__ import annotations

import resource
from typing import Any

import numpy as np


def _params(layer: Any) -> dict[str, Any]:
    return {"threshold": layer.threshold, "num_perm": layer.num_perm, "shingle": layer.shingle,
            "ngram": layer.ngram, "seed": layer.seed, "max_bucket": layer.max_bucket,
            "bands": layer.bands, "rows": layer.rows}


def _layer(p: dict[str, Any]) -> Any:
    """The layer on a worker, with the caller's bands and rows (a benchmark may fix its own)."""
    from synthboot.stages.dedup import MinHashLayer

    layer = MinHashLayer(**{k: v for k, v in p.items() if k not in ("bands", "rows")})
    layer.bands, layer.rows = p["bands"], p["rows"]
    return layer


def map_block(texts: list[str], start: int, p: dict[str, Any], partitions: int) -> tuple:
    """One block -> ((shingle hashes, offsets, signatures), peak MB, *R partitions of (band, key, row) triples)."""
    layer = _layer(p)
    matrix, hashes = layer.shingle_matrix(texts)
    sig = layer.signature_rows(matrix, hashes)
    # Each row's shingles as sorted content hashes: the block-independent form of its set.
    lengths = np.diff(matrix.indptr)
    row_of = np.repeat(np.arange(len(texts)), lengths)
    flat = hashes[matrix.indices]
    flat = flat[np.lexsort((flat, row_of))]
    nonempty = np.flatnonzero(lengths)
    signed = sig[nonempty]
    keys = np.stack([layer.band_keys(signed, band) for band in range(layer.bands)], axis=1)
    triples = np.stack([np.tile(np.arange(layer.bands, dtype=np.uint64), len(nonempty)), keys.reshape(-1),
                        np.repeat((nonempty + start).astype(np.uint64), layer.bands)], axis=1)
    part = ((triples[:, 1] ^ (triples[:, 0] * np.uint64(0x9E3779B97F4A7C15))) % np.uint64(partitions)).astype(np.int64)
    return ((flat, matrix.indptr.astype(np.int64), sig), _peak_mb(), *[triples[part == r] for r in range(partitions)])


def reduce_partition(links: int, *parts: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows sharing a (band, key) bucket -> unique (row, earlier row) pairs, each row with the up to `links` before it."""
    from synthboot.stages.dedup import _bucket_mates

    triples = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.uint64)
    if len(triples) == 0:
        return np.zeros((0, 2), dtype=np.int64), _peak_mb()
    t = triples[np.lexsort((triples[:, 2], triples[:, 1], triples[:, 0]))]
    # A bucket is a run of equal (band, key); its number stands for the key in `_bucket_mates`.
    bucket = np.cumsum(np.r_[True, (t[1:, 0] != t[:-1, 0]) | (t[1:, 1] != t[:-1, 1])])
    x, y = _bucket_mates(bucket, links)
    rows = t[:, 2].astype(np.int64)
    return _unique_pairs(rows[x], rows[y]), _peak_mb()


def _unique_pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The distinct (i, j) pairs, sorted, as an int64 array of shape (k, 2); rows are below 2**31."""
    from synthboot.stages.tokens import unique_sorted

    codes = unique_sorted((i.astype(np.int64) << 32) | j.astype(np.int64))
    return np.stack([codes >> 32, codes & 0xFFFFFFFF], axis=1)


def score_pairs(pairs: np.ndarray, p: dict[str, Any], block_size: int, exact: bool, *blocks: Any) -> tuple:
    """The pairs scoring at or above the threshold, as an (k, 3) float64 array (row, earlier row, score).

    `blocks` are the map blocks' (shingle hashes, offsets, signatures). As in MinHashLayer, pairs
    whose signatures agree on fewer than threshold - 0.2 of the permutations are dropped, then
    the rest get their exact Jaccard (`exact=False`: the signatures' agreement is the score).
    """
    layer = _layer(p)
    if len(pairs) == 0:
        return np.zeros((0, 3)), _peak_mb()
    bi, bj = pairs[:, 0] // block_size, pairs[:, 1] // block_size
    agree = np.zeros(len(pairs), dtype=np.int64)
    for x in np.unique(bi):
        for y in np.unique(bj[bi == x]):
            sel = np.flatnonzero((bi == x) & (bj == y))
            left = blocks[x][2][pairs[sel, 0] % block_size]
            right = blocks[y][2][pairs[sel, 1] % block_size]
            agree[sel] = np.count_nonzero(left == right, axis=1)
    keep = agree >= layer.min_agreement
    pairs, scores = pairs[keep], agree[keep] / layer.num_perm
    if exact:
        for n in range(len(pairs)):
            i, j = int(pairs[n, 0]), int(pairs[n, 1])
            fi, oi, _ = blocks[i // block_size]
            fj, oj, _ = blocks[j // block_size]
            a = fi[oi[i % block_size]:oi[i % block_size + 1]]
            b = fj[oj[j % block_size]:oj[j % block_size + 1]]
            inter = len(np.intersect1d(a, b, assume_unique=True))
            scores[n] = inter / max(1, len(a) + len(b) - inter)
    hit = scores >= layer.threshold
    return np.column_stack([pairs[hit], scores[hit]]).astype(np.float64), _peak_mb()


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
    found = [get(r[0]) for r in reduced]
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    pairs = _unique_pairs(pairs[:, 0], pairs[:, 1])
    chunks = np.array_split(pairs, max(1, cpus * 2)) if len(pairs) else []
    scored = [remote(score_pairs, 2)(put(c), p, block_size, exact, *[m[0] for m in mapped]) for c in chunks]
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
