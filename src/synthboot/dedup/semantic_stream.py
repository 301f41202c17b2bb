"""Greedy semantic dedup of a stream of texts, chunk by chunk, holding only the kept rows' vectors.

What `synthboot dedup FILE --method semantic` runs. The batch search (`synthboot.dedup.ivf`) links
every row to its best earlier rows, removed ones included: on a file made of clusters of
near-copies most of its time goes to pairs among copies that the greedy pass then ignores (a
row is only ever removed for matching an earlier *kept* row). Here each row is compared with the
kept rows only, and the kept rows of a file of copies are few and far apart (no two of them at the
threshold), so the cells they are put in stay small.

Rows are taken in micro-batches of `BATCH` rows, cut at multiples of `BATCH` of the row number
(so the file's chunk size changes nothing). The rule for a row r: it is removed when some earlier
kept row j, whose cell is among r's `probes` nearest cells, has cosine >= threshold (scored
exactly on all dimensions); its match is the best such j (scores ranked to 5 decimals, ties to the
earlier row). The kept rows of earlier micro-batches are looked up in the cells; the micro-batch's
own earlier rows by the same rule (grouped by cell), then the greedy pass decides them in order.

Cells: while fewer than `EXACT_KEPT` rows are kept, one cell holds them all (exact search). Then,
each time the kept rows double, the cells are made again from them: spherical k-means on their 64
leading principal axes (`ivf._kmeans`, fixed seed), about 4 sqrt(kept) cells, every kept row put
in its nearest cell. Rebuilds happen only at micro-batch ends, so identical input gives identical
output whatever the chunking. Misses (a kept match in a cell the row does not probe) are measured
against brute force by `bench/dedup_semantic_scale.py` and in `tests/test_semantic_stream.py`.

Memory: the kept rows' vectors (float32, grouped by cell), the chunk's vectors, and the piece
cache of the static embedder; never all rows' vectors or any list of all pairs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from synthboot.dedup.cosine import principal_axes, rank_score
from synthboot.dedup.ivf import COARSE_AXES, _kmeans, _nearest_cells, cell_count
from synthboot.stages.dedup import SemanticLayer

Removal = tuple[str, int, float]  # (layer, the kept row it duplicates, similarity)

BATCH = 4096  # rows per micro-batch: its rows' cell lists and products stay a few MB
EXACT_KEPT = 4096  # up to this many kept rows, one cell: every kept row is compared
# Cells each row looks in. On the 55,185 T0 prompts against the same pass with one cell (exact):
# 8 probes found 0.9923 of its removals, 16 found 0.9968 for 1.1 s more CPU (bench --mode stream --exact).
PROBES = 16
_BLOCK = 2048  # queries and members per product: a product and its masks stay a few tens of MB


def _row_best(sims: np.ndarray, threshold: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(rows with a score >= threshold, each one's best column, its rank and score); the best as
    `rank_score` ranks (5 decimals), ties to the first column (members are in row order). None: no row."""
    top = np.argmax(sims, axis=1)
    peak = sims[np.arange(len(sims)), top]
    at = np.flatnonzero(peak >= threshold)
    if len(at) == 0:
        return None
    # Columns within rounding of each row's peak may rank equal to it: rank those few exactly.
    r, c = np.nonzero(sims[at] >= np.maximum(peak[at] - 1e-5, threshold)[:, None])
    rank = rank_score(sims[at[r], c])
    order = np.lexsort((c, -rank, r))
    first = order[np.r_[True, r[order][1:] != r[order][:-1]]]
    return at, c[first], rank[first], sims[at[r[first]], c[first]]


class _Cells:
    """Kept rows' vectors and row numbers, grouped by cell, each cell a growable block."""

    def __init__(self, cells: int, dim: int) -> None:
        self.vectors = [np.zeros((0, dim), np.float32) for _ in range(cells)]
        self.rows = [np.zeros(0, np.int64) for _ in range(cells)]
        self.size = np.zeros(cells, np.int64)

    def add(self, cell: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Append rows (ascending) to their cells: each cell's rows stay in row order."""
        if len(rows) == 0:
            return
        order = np.argsort(cell, kind="stable")
        cell, rows, vectors = cell[order], rows[order], vectors[order]
        edges = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1], True])
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
            c = int(cell[lo])
            size, need = int(self.size[c]), int(self.size[c]) + hi - lo
            if need > len(self.rows[c]):  # grow by doubling: appends stay amortised O(1)
                room = max(need, 2 * len(self.rows[c]), 16)
                bigger = np.zeros((room, vectors.shape[1]), np.float32)
                bigger[:size] = self.vectors[c][:size]
                self.vectors[c] = bigger
                more = np.zeros(room, np.int64)
                more[:size] = self.rows[c][:size]
                self.rows[c] = more
            self.vectors[c][size:need] = vectors[lo:hi]
            self.rows[c][size:need] = rows[lo:hi]
            self.size[c] = need

    def members(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        size = int(self.size[c])
        return self.vectors[c][:size], self.rows[c][:size]

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every kept row's vector and row number, by row."""
        rows = np.concatenate([self.rows[c][:int(self.size[c])] for c in range(len(self.rows))])
        vectors = np.concatenate([self.vectors[c][:int(self.size[c])] for c in range(len(self.rows))])
        order = np.argsort(rows, kind="stable")
        return vectors[order], rows[order]


class StreamingSemantic:
    """Feed chunks of texts in order with `add`; each returns the removals among that chunk's rows.

    `layer` gives the threshold and the embedder; `add_vectors` takes unit vectors directly.
    """

    name = "semantic"

    def __init__(self, layer: SemanticLayer, *, probes: int = PROBES, batch: int = BATCH, exact_kept: int = EXACT_KEPT,
                 seed: int = 0) -> None:
        self.layer = layer
        self.threshold = layer.threshold
        self.probes, self.batch, self.exact_kept, self.seed = probes, batch, exact_kept, seed
        self.rows = 0  # rows seen so far
        self.kept = 0  # non-empty rows kept (indexed)
        self._built_at = 0  # kept rows when the cells were last made (0: one cell, exact)
        self._cells: _Cells | None = None
        self._axes: np.ndarray | None = None  # d x COARSE_AXES: the cells' coarse projection
        self._centroids: np.ndarray | None = None
        self.timings: dict[str, float] = {}

    def add(self, texts: Sequence[str]) -> dict[int, Removal]:
        """Removals among `texts` (rows self.rows, self.rows + 1, ... of the stream), by row number."""
        clock = time.process_time()
        vectors = self.layer.embed(list(texts)) if len(texts) else np.zeros((0, 1), np.float32)
        self._lap("embed", clock)
        return self.add_vectors(vectors, [not t.strip() for t in texts])

    def add_vectors(self, vectors: np.ndarray, empty: Sequence[bool]) -> dict[int, Removal]:
        """`add` for unit vectors (float32 rows); `empty` rows are kept and never match."""
        from threadpoolctl import threadpool_limits

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        empty_mask = np.asarray(empty, dtype=bool)
        removed: dict[int, Removal] = {}
        # One BLAS thread: on a busy machine OpenBLAS's threads spin waiting for each other (ivf.py).
        with threadpool_limits(limits=1, user_api="blas"):
            lo = 0
            while lo < len(vectors):
                hi = min(len(vectors), lo + self.batch - (self.rows % self.batch))  # cut at multiples of batch
                removed.update(self._micro_batch(vectors[lo:hi], empty_mask[lo:hi]))
                lo = hi
        return removed

    def _lap(self, name: str, since: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.process_time() - since, 3)

    def _micro_batch(self, vectors: np.ndarray, empty: np.ndarray) -> dict[int, Removal]:
        clock = time.process_time()
        base, b = self.rows, len(vectors)
        if self._cells is None:
            self._cells = _Cells(1, vectors.shape[1])
        live = np.flatnonzero(~empty)
        near = self._probe(vectors[live])  # live rows x probes, nearest cell first
        self._lap("assign", clock)
        clock = time.process_time()
        best_row, best_score = self._search_kept(vectors, live, near)
        self._lap("kept_rows", clock)
        clock = time.process_time()
        # The micro-batch's own rows, among those still open (a row with a kept match above is
        # removed whatever else it matches, and a removed row is never anyone's match).
        open_pos = np.flatnonzero(best_row[live] < 0)
        qi, qj, qs = self._search_within(vectors[live[open_pos]], near[open_pos])
        qi, qj = live[open_pos[qi]], live[open_pos[qj]]
        self._lap("within_batch", clock)
        clock = time.process_time()
        removed, kept = self._greedy(base, b, best_row, best_score, qi, qj, qs)
        kept_live = kept[live]
        self._cells.add(near[kept_live, 0], base + live[kept_live], vectors[live[kept_live]])
        self.kept += int(kept_live.sum())
        self.rows += b
        if self.rows % self.batch == 0 and self.kept >= max(self.exact_kept, 2 * self._built_at):
            self._rebuild()
        self._lap("greedy_and_cells", clock)
        return removed

    def _probe(self, vectors: np.ndarray) -> np.ndarray:
        """Each row's `probes` nearest cells (one cell, 0, before the cells are made)."""
        if self._centroids is None:
            return np.zeros((len(vectors), 1), np.int64)
        assert self._axes is not None
        return _nearest_cells(vectors @ self._axes, self._centroids, min(self.probes, len(self._centroids)))

    def _search_kept(self, vectors: np.ndarray, live: np.ndarray, near: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, its best kept earlier row in the cells it probes (-1: none at the threshold)."""
        assert self._cells is not None
        b = len(vectors)
        best_row = np.full(b, -1, np.int64)
        best_rank = np.full(b, -np.inf)
        best_score = np.zeros(b, np.float32)
        if self.kept == 0 or len(live) == 0:
            return best_row, best_score
        cell_of = near.ravel()
        query = np.repeat(live, near.shape[1])
        order = np.argsort(cell_of, kind="stable")
        cell_of, query = cell_of[order], query[order]
        edges = np.flatnonzero(np.r_[True, cell_of[1:] != cell_of[:-1], True])
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
            members, rows = self._cells.members(int(cell_of[lo]))
            # In blocks: before the cells are made, one cell holds every kept row.
            for qa in range(lo, hi, _BLOCK):
                for ma in range(0, len(rows), _BLOCK):
                    q = query[qa:min(hi, qa + _BLOCK)]
                    sims = vectors[q] @ members[ma:ma + _BLOCK].T
                    found = _row_best(sims, self.threshold)
                    if found is None:
                        continue
                    at, top, top_rank, top_score = found
                    q, top_row = q[at], rows[ma + top]
                    better = (top_rank > best_rank[q]) | ((top_rank == best_rank[q]) & (top_row < best_row[q]))
                    q = q[better]
                    best_row[q], best_rank[q], best_score[q] = top_row[better], top_rank[better], top_score[better]
        return best_row, best_score

    def _search_within(self, vectors: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(later, earlier, cosine) among the given rows (in order), by the cells rule: the earlier row's
        nearest cell is among the later row's probes. Sorted by later row, best first, ties to the earlier."""
        n = len(vectors)
        if n < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        primary = near[:, 0]
        cell_of = near.ravel()
        query = np.repeat(np.arange(n), near.shape[1])
        q_order = np.argsort(cell_of, kind="stable")
        cell_of, query = cell_of[q_order], query[q_order]
        m_order = np.argsort(primary, kind="stable")
        m_cells = primary[m_order]
        parts = []
        q_edges = np.flatnonzero(np.r_[True, cell_of[1:] != cell_of[:-1], True])
        for lo, hi in zip(q_edges[:-1].tolist(), q_edges[1:].tolist()):
            c = cell_of[lo]
            members = m_order[np.searchsorted(m_cells, c, "left"):np.searchsorted(m_cells, c, "right")]
            q = query[lo:hi]
            if len(members) == 0 or members[0] >= q[-1]:
                continue
            sims = vectors[q] @ vectors[members].T
            a, m = np.nonzero((sims >= self.threshold) & (members[None, :] < q[:, None]))
            if len(a):
                parts.append((q[a], members[m], sims[a, m]))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        i, j, s = (np.concatenate(x) for x in zip(*parts))
        order = np.lexsort((j, -rank_score(s), i))
        return i[order], j[order], s[order]

    def _greedy(self, base: int, b: int, best_row: np.ndarray, best_score: np.ndarray, qi: np.ndarray,
                qj: np.ndarray, qs: np.ndarray) -> tuple[dict[int, Removal], np.ndarray]:
        removed: dict[int, Removal] = {}
        kept = np.ones(b, dtype=bool)
        hit = np.flatnonzero(best_row >= 0)
        kept[hit] = False
        for r, j, s in zip(hit.tolist(), best_row[hit].tolist(), best_score[hit].tolist()):
            removed[base + r] = ("semantic", j, round(s, 4))
        if len(qi):
            starts = np.flatnonzero(np.r_[True, qi[1:] != qi[:-1]])
            ends = np.r_[starts[1:], len(qi)]
            rows, targets, scores = qi.tolist(), qj.tolist(), qs.tolist()
            for lo, hi in zip(starts.tolist(), ends.tolist()):
                k = next((k for k in range(lo, hi) if kept[targets[k]]), None)
                if k is not None:
                    kept[rows[lo]] = False
                    removed[base + rows[lo]] = ("semantic", base + targets[k], round(scores[k], 4))
        return removed, kept

    def _rebuild(self) -> None:
        """Cells made again from every kept row: about 4 sqrt(kept) of them (see the module's text)."""
        assert self._cells is not None
        clock = time.process_time()
        vectors, rows = self._cells.all()
        self._cells = None
        axes = principal_axes(vectors)[:, :min(COARSE_AXES, vectors.shape[1])]
        coarse = vectors @ axes
        cells = min(cell_count(len(vectors)), len(vectors))
        self._centroids = _kmeans(np.ascontiguousarray(coarse), cells, 8, self.seed)
        self._axes = np.ascontiguousarray(axes)
        primary = _nearest_cells(coarse, self._centroids, 1)[:, 0]
        self._cells = _Cells(cells, vectors.shape[1])
        self._cells.add(primary, rows, vectors)
        self._built_at = len(rows)
        self._lap("rebuild", clock)


__all__ = ["StreamingSemantic", "Removal", "BATCH", "EXACT_KEPT", "PROBES"]
