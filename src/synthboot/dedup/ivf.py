"""Cosine links of many unit vectors through cells (an inverted file), every candidate scored exactly.

The exact search (`synthboot.dedup.cosine`) compares every pair: quadratic, about 16 s of CPU
for 55k rows and hours for a million. Here rows are first put in cells: spherical k-means
centroids (a fixed seed, trained on a sample of rows, on their leading principal axes) and each
row's primary cell is its nearest centroid. A row is compared, by one matrix product per cell on
all dimensions, with the rows whose primary cell is among its `probes` nearest cells; a pair
counts when either row probes the other's cell. Only near-duplicates in cells neither probes are
missed: `bench/dedup_semantic.py` measures the misses against the exact search, and the tests
check the recall on planted copies. Every step is deterministic (fixed seed, stable sorts, ties
to the earlier row), so identical runs give identical links.

Memory: the rows' vectors (one float32 copy, rotated), each row's probe list, and the pairs
found, cut to each row's k best whenever they pile up.
"""

from __future__ import annotations

import numpy as np

from synthboot.dedup.cosine import principal_axes, rank_score

EXACT_MAX = 20_000  # up to this many rows the exact search runs (20k: about 2 s of CPU)
COARSE_AXES = 64  # leading principal axes the cells are found on (the scores use all of them)
_MERGE_AT = 4_000_000  # pairs held before they are cut to each row's k best
_BLOCK = 2048  # queries and members per product
_FEW = 262_144  # a block with more pairs above the threshold is cut to each row's k best first


def semantic_links(vectors: np.ndarray, threshold: float, k: int, *, overwrite: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The semantic layer's search: exact up to `EXACT_MAX` rows, through cells above.

    BLAS runs on one thread here: on a busy machine OpenBLAS's threads spin waiting for each other
    (55k rows, load 12 on 2 cores: the cells' products took 6.7 s of CPU on two threads, 0.8 s on
    one), and the products are a small part of the search.
    """
    from threadpoolctl import threadpool_limits

    from synthboot.dedup.cosine import cosine_links

    with threadpool_limits(limits=1, user_api="blas"):
        if len(vectors) <= EXACT_MAX:
            return cosine_links(vectors, threshold, k)
        return ivf_links(vectors, threshold, k, overwrite=overwrite)


def cell_count(n: int) -> int:
    """Cells for n rows: about 4 sqrt(n) (55k rows: 940 cells of ~60 rows; 1M: 4,000 of 250)."""
    return max(16, int(4 * np.sqrt(n)))


def ivf_links(vectors: np.ndarray, threshold: float, k: int, *, cells: int | None = None, probes: int = 8,
              iterations: int = 8, seed: int = 0, timings: dict[str, float] | None = None,
              overwrite: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine), j < i, for each row i's up to `k` best earlier rows found at or above `threshold`.

    Pairs come sorted by i, then best first, ties to the earlier row (as `cosine_links`).
    `timings`, when given, gets the CPU seconds of each phase. `overwrite`: `vectors` (float32,
    C-ordered) may be turned to their principal axes in place (1M rows: 1 GB not copied).
    """
    import time

    clock = time.process_time()

    def lap(name: str) -> None:
        nonlocal clock
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + time.process_time() - clock, 3)
        clock = time.process_time()

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    cells = min(cells or cell_count(n), n)
    probes = min(probes, cells)
    axes = principal_axes(vectors)
    rotated = vectors if overwrite else np.empty_like(vectors)
    for lo in range(0, n, 65_536):  # in blocks: in place needs each block's product apart
        rotated[lo:lo + 65_536] = vectors[lo:lo + 65_536] @ axes
    coarse = np.ascontiguousarray(rotated[:, :min(COARSE_AXES, d)])
    lap("rotate")
    centroids = _kmeans(coarse, cells, iterations, seed)
    lap("kmeans")
    near = _nearest_cells(coarse, centroids, probes)  # n x probes, nearest first
    lap("assign")
    primary = near[:, 0]
    members_order = np.argsort(primary, kind="stable")
    member_edges = np.searchsorted(primary[members_order], np.arange(cells + 1))
    # Who probes each cell: (cell, row) sorted by cell, rows ascending within a cell.
    probe_cell = near.ravel()
    probe_row = np.repeat(np.arange(n), probes)
    order = np.argsort(probe_cell, kind="stable")
    probe_cell, probe_row = probe_cell[order], probe_row[order]
    probe_edges = np.searchsorted(probe_cell, np.arange(cells + 1))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    held = 0
    for c in range(cells):
        members = members_order[member_edges[c]:member_edges[c + 1]]
        queries = probe_row[probe_edges[c]:probe_edges[c + 1]]
        # In blocks: a cell full of copies of one text (thousands at 1M rows) would otherwise make
        # a product, and a list of pairs, of gigabytes.
        for qa in range(0, len(queries), _BLOCK):
            for ma in range(0, len(members), _BLOCK):
                pairs = _block_pairs(rotated, queries[qa:qa + _BLOCK], members[ma:ma + _BLOCK], threshold, k)
                if pairs is not None:
                    found.append(pairs)
                    held += len(pairs[0])
                if held > _MERGE_AT:
                    found = [_best_k(*_joined(found), k)]
                    held = len(found[0][0])
    lap("cells")
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    out = _best_k(*_joined(found), k)
    lap("merge")
    return out


def _block_pairs(rotated: np.ndarray, queries: np.ndarray, members: np.ndarray, threshold: float, k: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(later row, earlier row, cosine) of the block's pairs at or above the threshold (None: no pair).

    A block with many such pairs (copies of one text) gives only each row's k best of the block,
    ties to the earlier row, as the final cut would: in both directions, since either row of a
    pair may be the later one.
    """
    sims = rotated[queries] @ rotated[members].T
    hit = sims >= threshold
    hit &= queries[:, None] != members[None, :]
    count = int(np.count_nonzero(hit))
    if count == 0:
        return None
    if count <= _FEW:
        q, m = np.nonzero(hit)
        q_row, m_row = queries[q], members[m]
        return np.maximum(q_row, m_row), np.minimum(q_row, m_row), sims[q, m]
    parts = []
    for later_is_query in (True, False):
        mask = hit & ((members[None, :] < queries[:, None]) if later_is_query else (queries[:, None] < members[None, :]))
        earlier = members if later_is_query else queries
        # The score, then a tie-break far below float32's resolution: the earlier row first.
        key = np.where(mask, rank_score(sims), -np.inf)
        key -= (earlier[None, :] if later_is_query else earlier[:, None]) * 2.0 ** -50
        axis = 1 if later_is_query else 0
        top = min(k, key.shape[axis])
        pick = np.argpartition(-key, top - 1, axis=axis)[:, :top] if axis == 1 \
            else np.argpartition(-key, top - 1, axis=0)[:top, :]
        ok = np.take_along_axis(mask, pick, axis=axis)
        score = np.take_along_axis(sims, pick, axis=axis)
        if later_is_query:
            rows, cols = np.broadcast_to(queries[:, None], pick.shape), members[pick]
        else:
            rows, cols = np.broadcast_to(members[None, :], pick.shape), queries[pick]
        parts.append((rows[ok], cols[ok], score[ok]))
    return _joined(parts)


def _joined(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j, score = zip(*found)
    return np.concatenate(i), np.concatenate(j), np.concatenate(score)


def _best_k(i: np.ndarray, j: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (i, j) pairs, sorted by i then best first (ties to the smaller j), at most k per i."""
    order = np.lexsort((j, -rank_score(score), i))
    i, j, score = i[order].astype(np.int64), j[order].astype(np.int64), score[order].astype(np.float32)
    # A pair found from both of its rows, or in several cells, may differ in the last bit
    # (different products): its first copy, the best, is kept.
    key = (i << 32) | j
    first_of_pair = np.ones(len(key), dtype=bool)
    if len(key) > 1:
        by_key = np.argsort(key, kind="stable")
        repeat = np.zeros(len(key), dtype=bool)
        repeat[by_key[1:]] = key[by_key[1:]] == key[by_key[:-1]]
        first_of_pair = ~repeat
    i, j, score = i[first_of_pair], j[first_of_pair], score[first_of_pair]
    start = np.searchsorted(i, i, side="left")
    keep = np.arange(len(i)) - start < k
    return i[keep], j[keep], score[keep]


def _kmeans(points: np.ndarray, cells: int, iterations: int, seed: int) -> np.ndarray:
    """Spherical k-means centroids (unit rows), trained on up to 64 rows per cell drawn with `seed`."""
    rng = np.random.default_rng(seed)
    n = len(points)
    sample = points[np.sort(rng.choice(n, size=min(n, 64 * cells), replace=False))]
    centroids = sample[np.sort(rng.choice(len(sample), size=cells, replace=False))].copy()
    for _ in range(iterations):
        label = _nearest_cells(sample, _unit(centroids), 1)[:, 0]
        sums = np.zeros_like(centroids)
        np.add.at(sums, label, sample)
        empty = np.bincount(label, minlength=cells) == 0
        sums[empty] = centroids[empty]  # an empty cell keeps its centroid
        centroids = sums
    return _unit(centroids)


def _nearest_cells(points: np.ndarray, centroids: np.ndarray, probes: int, block: int = 8192) -> np.ndarray:
    """Each point's `probes` nearest centroids by dot product, nearest first (ties to the lower cell)."""
    out = np.zeros((len(points), probes), dtype=np.int64)
    for lo in range(0, len(points), block):
        sims = points[lo:lo + block] @ centroids.T
        if probes == 1:
            out[lo:lo + block, 0] = np.argmax(sims, axis=1)
            continue
        part = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
        picked = np.take_along_axis(sims, part, axis=1)
        rank = np.lexsort((part, -picked), axis=1)
        out[lo:lo + block] = np.take_along_axis(part, rank, axis=1)
    return out


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
