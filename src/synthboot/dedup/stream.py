"""Greedy exact + MinHash dedup of a stream of texts, chunk by chunk, holding only what was kept.

What `synthboot dedup FILE --method exact,minhash` runs, so a million rows fit in a few GB: the
batch layers (`stages.dedup`) list every pair of near-duplicates, and on a file of clusters of
near-copies those pairs (95M of them on the benchmark's million rows) are most of the memory and
time. A row is only ever removed for matching an earlier row that was *kept*, so here each chunk
of rows is compared with the kept rows so far and with itself, and only the kept rows' band
keys, signatures and shingles are held.

Per chunk: the layer's own vectorised words, signatures and band keys (content-hashed, so a
row's signature does not depend on its chunk); candidates are kept rows sharing a band bucket
(sorted runs of (key, row) per band, merged as they grow) plus the chunk's own bucket pairs;
the layer's signature pre-filter, then the exact Jaccard; then the greedy pass in row order, as
`dedup_records` does (layers in order, the best-scoring kept match). The chunk's own pairs are
scored inside the greedy pass, a block of rows at a time, and only those whose earlier row is
still kept (`_block_matches`). Exact duplicates are found by a 64-bit hash of each row's word
sequence (the words `normalize` joins).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from synthboot.stages.dedup import ExactLayer, MinHashLayer, ShingleRows, exact_jaccard, jaccard_block_rows
from synthboot.stages.tokens import content_hashes, mix64, unique_sorted, words_and_vocabulary

Removal = tuple[str, int, float]  # (layer, the kept row it duplicates, similarity)


@dataclass
class _Runs:
    """One band's kept (key, row) pairs as a few sorted runs; runs of similar size are merged."""

    runs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], rows[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, r1), (k2, r2) = self.runs.pop(-2), self.runs.pop()
            keys, rows = np.concatenate([k1, k2]), np.concatenate([r1, r2])
            order = np.argsort(keys, kind="stable")  # stable: equal keys stay in row order
            self.runs.append((keys[order], rows[order]))

    def mates(self, keys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """(position in `keys`, kept row) for the up to `cap` latest kept rows with each key, per run."""
        xs, ys = [], []
        for sorted_keys, rows in self.runs:
            lo = np.searchsorted(sorted_keys, keys, side="left")
            hi = np.searchsorted(sorted_keys, keys, side="right")
            count = np.minimum(hi - lo, cap)
            x = np.repeat(np.arange(len(keys)), count)
            back = np.arange(len(x)) - np.repeat(np.cumsum(count) - count, count) + 1
            xs.append(x)
            ys.append(rows[np.repeat(hi, count) - back])
        return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.zeros(0, np.int64), np.zeros(0, np.int64))


class _Grow:
    """A growable array (amortised doubling), rows along axis 0."""

    def __init__(self, width: int | None, dtype) -> None:
        self.data = np.zeros((1024, width) if width else 1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            bigger = np.zeros((max(need, 2 * len(self.data)),) + self.data.shape[1:], dtype=self.data.dtype)
            bigger[:self.size] = self.data[:self.size]
            self.data = bigger
        self.data[self.size:need] = values
        self.size = need

    def view(self) -> np.ndarray:
        return self.data[:self.size]


class StreamingDedup:
    """Feed chunks of texts in order with `add`; each returns the removals among that chunk's rows.

    `layers`: an `ExactLayer` and/or a word-shingle `MinHashLayer`, in the order they are tried.
    """

    def __init__(self, layers: Sequence[ExactLayer | MinHashLayer]) -> None:
        self.layers = list(layers)
        self.minhash = next((x for x in self.layers if isinstance(x, MinHashLayer)), None)
        if any(not isinstance(x, (ExactLayer, MinHashLayer)) for x in self.layers):
            raise ValueError("streaming dedup runs exact and minhash layers only")
        self.rows = 0
        self._exact: dict[int, int] = {}  # word-sequence hash -> first kept row
        self.timings: dict[str, float] = {}
        if self.minhash is not None:
            m = self.minhash
            self._bands = [_Runs() for _ in range(m.bands)]
            self._sig = _Grow(m.num_perm, np.uint32)  # kept rows' signatures, by kept slot
            self._slot = _Grow(None, np.int64)  # row -> kept slot (-1: not kept or empty)
            self._shingles = _Grow(None, np.uint64)  # kept rows' shingle hashes, concatenated
            self._offsets = _Grow(None, np.int64)
            self._offsets.extend(np.zeros(1, np.int64))

    def add(self, texts: Sequence[str]) -> dict[int, Removal]:
        """Removals among `texts` (rows self.rows, self.rows + 1, ... of the stream), by row number."""
        with _without_huge_pages():
            return self._add(texts)

    def _add(self, texts: Sequence[str]) -> dict[int, Removal]:
        import time

        clock = time.process_time()
        base, n = self.rows, len(texts)
        text_of, ids, words = words_and_vocabulary(texts)
        word_hash = content_hashes(words)
        exact_keys = _sequence_hashes(n, text_of, word_hash[ids]) if any(
            isinstance(x, ExactLayer) for x in self.layers) else None
        self._lap("words", clock)
        found = None
        if self.minhash is not None:
            found = self._minhash(texts, text_of, ids, word_hash)
        clock = time.process_time()
        removed, kept = self._greedy(base, n, exact_keys, found)
        if found is not None:
            self._keep(kept, found)
        self.rows += n
        self._lap("greedy", clock)
        return removed

    def _lap(self, name: str, since: float) -> None:
        import time

        self.timings[name] = round(self.timings.get(name, 0.0) + time.process_time() - since, 3)

    def _minhash(self, texts, text_of, ids, word_hash) -> dict:
        """The chunk's signatures and band keys; per row its best match among the kept rows of
        earlier chunks; and, for the rows without one, their matches within the chunk."""
        import time

        clock = time.process_time()
        m = self.minhash
        assert m is not None
        n = len(texts)
        if m.shingle == "word" and m.ngram == 1:
            matrix, hashes = m.rows_from_ids(n, text_of, ids, word_hash)
        else:
            matrix, hashes = m.shingle_matrix(texts)
        sig = m.signature_rows(matrix, hashes)
        nonempty = np.flatnonzero(np.diff(matrix.indptr))
        signed = sig[nonempty] if len(nonempty) < n else sig  # one copy (or none), not one per band
        keys = np.stack([m.band_keys(signed, b) for b in range(m.bands)], axis=1)
        self._lap("signatures", clock)
        clock = time.process_time()
        # Against the kept rows of earlier chunks: every kept row sharing a bucket.
        xs, ys = [], []
        for b, runs in enumerate(self._bands):
            x, y = runs.mates(keys[:, b], m.max_bucket)
            xs.append(nonempty[x])
            ys.append(y)
        cross = unique_sorted((np.concatenate(xs).astype(np.int64) << 32) | np.concatenate(ys).astype(np.int64))
        ci, cj = cross >> 32, cross & 0xFFFFFFFF
        if len(ci):
            ok = _agree(sig, ci, self._sig.view(), self._slot.view()[cj], m.min_agreement)
            ci, cj = ci[ok], cj[ok]
        targets, where = np.unique(cj, return_inverse=True)
        combined = self._with_kept_rows(matrix, hashes, targets)
        score = exact_jaccard(combined, ci, n + where.reshape(-1)) if len(ci) else np.zeros(0)
        ok = score >= m.threshold
        ci, cj, score = ci[ok], cj[ok], score[ok]
        order = np.lexsort((cj, -score, ci))  # per row: the best, ties to the earliest
        ci, cj, score = ci[order], cj[order], score[order]
        first = np.r_[True, ci[1:] != ci[:-1]] if len(ci) else np.zeros(0, bool)
        best_row, best_score = np.full(n, -1, np.int64), np.zeros(n)
        best_row[ci[first]], best_score[ci[first]] = cj[first], score[first]
        self._lap("earlier_chunks", clock)
        clock = time.process_time()
        # Within the chunk, among the rows still open: a row matched above is removed whatever
        # else it matches, and a removed row is never anyone's match. Their bucket pairs (i, j),
        # sorted by i, are scored by the greedy pass a block of rows at a time (`_block_matches`).
        is_open = best_row[nonempty] < 0
        inner = m.candidate_pairs(sig, nonempty[is_open], keys[is_open]) if is_open.sum() > 1 \
            else np.zeros((0, 2), np.int64)
        self._lap("within_chunk", clock)
        return {"best_row": best_row, "best_score": best_score, "inner_i": np.ascontiguousarray(inner[:, 0]),
                "inner_j": np.ascontiguousarray(inner[:, 1]),
                "sig": sig, "nonempty": nonempty, "keys": keys, "matrix": matrix, "hashes": hashes}

    def _block_matches(self, found: dict, kept: np.ndarray, lo: int, hi: int,
                       marks: np.ndarray) -> tuple[np.ndarray, list[int], list[float]]:
        """The matches of rows lo..hi-1 within the chunk: (offsets per row from lo, earlier row, Jaccard),
        each row's best first, ties to the earlier row.

        Only pairs whose earlier row is still kept are scored: rows before `lo` are decided by
        now, and a removed row is never a match. On files of clusters of near-copies most bucket
        pairs join two copies of one row, both removed but for the first: scoring every pair
        before the greedy pass (as `dedup_records` does) spent most of the time on them.
        """
        m = self.minhash
        assert m is not None
        pair_i, pair_j = found["inner_i"], found["inner_j"]
        a, b = np.searchsorted(pair_i, [lo, hi])
        if a == b:  # most blocks of a late chunk: its rows matched kept rows of earlier chunks
            return np.zeros(hi - lo + 1, dtype=np.int64), [], []
        i, j = pair_i[a:b], pair_j[a:b]
        live = (j >= lo) | kept[j]
        i, j = i[live], j[live]
        sig = found["sig"]
        agree = np.count_nonzero(sig[i] == sig[j], axis=1) >= m.min_agreement
        i, j = i[agree], j[agree]
        score = exact_jaccard(found["matrix"], i, j, marks) if len(i) else np.zeros(0)
        ok = score >= m.threshold
        i, j, score = i[ok], j[ok], score[ok]
        order = np.lexsort((j, -score, i))
        ptr = np.concatenate([[0], np.cumsum(np.bincount(i - lo, minlength=hi - lo))])
        return ptr, j[order].tolist(), score[order].tolist()

    def _with_kept_rows(self, matrix, hashes: np.ndarray, targets: np.ndarray):
        """The chunk's matrix with the given kept rows appended, their shingles renumbered into the
        chunk's columns (a shingle no chunk row has goes to one extra column, which matches nothing)."""
        n, vocab = matrix.shape
        if len(targets) == 0:
            return matrix
        offsets = self._offsets.view()
        slots = self._slot.view()[targets]
        lengths = offsets[slots + 1] - offsets[slots]
        pos = np.arange(lengths.sum()) + np.repeat(offsets[slots] - (np.cumsum(lengths) - lengths), lengths)
        theirs = self._shingles.view()[pos]
        order = np.argsort(hashes)
        at = np.minimum(np.searchsorted(hashes, theirs, sorter=order), len(hashes) - 1)
        cols = np.where(hashes[order[at]] == theirs, order[at], vocab)
        indptr = np.concatenate([matrix.indptr, matrix.indptr[-1] + np.cumsum(lengths)])
        return ShingleRows(indptr, np.concatenate([matrix.indices, cols]), (n + len(targets), vocab + 1))

    def _greedy(self, base: int, n: int, exact_keys, found: dict | None) -> tuple[dict[int, Removal], np.ndarray]:
        """Row by row, layers in order: removed for the first layer matching an earlier kept row."""
        removed: dict[int, Removal] = {}
        kept = np.ones(n, dtype=bool)
        keys = exact_keys.tolist() if exact_keys is not None else None
        block = max(1, n)
        if found is not None:
            best_row, best_score = found["best_row"].tolist(), found["best_score"].tolist()
            vocab = found["matrix"].shape[1]
            block = jaccard_block_rows(vocab)  # rows per `_block_matches`: one marks table each
            marks = np.zeros(block * vocab, dtype=bool)
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            rows: list[int] | range = range(lo, hi)
            if found is not None:
                offsets, target, score = self._block_matches(found, kept, lo, hi, marks)
                ptr = offsets.tolist()
                if keys is None:  # no exact layer: a row without a match has nothing to decide (kept)
                    rows = (np.flatnonzero((np.diff(offsets) > 0) | (found["best_row"][lo:hi] >= 0)) + lo).tolist()
            for r in rows:
                for layer in self.layers:
                    if isinstance(layer, ExactLayer):
                        j = self._exact.get(keys[r]) if keys is not None and keys[r] is not None else None
                        if j is not None:
                            removed[base + r] = ("exact", j, 1.0)
                            break
                    elif best_row[r] >= 0:
                        removed[base + r] = ("minhash", best_row[r], round(best_score[r], 4))
                        break
                    else:
                        hit = next((k for k in range(ptr[r - lo], ptr[r - lo + 1]) if kept[target[k]]), None)
                        if hit is not None:
                            removed[base + r] = ("minhash", base + target[hit], round(score[hit], 4))
                            break
                else:
                    if keys is not None and keys[r] is not None:
                        self._exact.setdefault(keys[r], base + r)
                    continue
                kept[r] = False
        return removed, kept

    def _keep(self, kept: np.ndarray, found: dict) -> None:
        """Index the chunk's kept rows: band keys, signatures, shingle hashes."""
        sig, nonempty, keys, matrix, hashes = (found[k] for k in ("sig", "nonempty", "keys", "matrix", "hashes"))
        n = len(kept)
        slot = np.full(n, -1, dtype=np.int64)
        chosen = nonempty[kept[nonempty]]
        slot[chosen] = self._sig.size + np.arange(len(chosen))
        self._slot.extend(slot)
        self._sig.extend(sig[chosen])
        lengths = np.diff(matrix.indptr)[chosen]
        pos = np.arange(lengths.sum()) + np.repeat(matrix.indptr[chosen] - (np.cumsum(lengths) - lengths), lengths)
        self._shingles.extend(hashes[matrix.indices[pos]])
        self._offsets.extend(self._offsets.view()[-1] + np.cumsum(lengths))
        in_keys = kept[nonempty]
        for b, runs in enumerate(self._bands):
            runs.add(keys[in_keys, b], (chosen + self.rows).astype(np.int64))


@contextmanager
def _without_huge_pages() -> Iterator[None]:
    """numpy off asking the kernel for transparent huge pages (madvise) for its arrays of 4 MB or more.

    A chunk's arrays are mostly short-lived temporaries of tens of MB. With huge pages each one's
    first touch zeroes (and, where THP defrag is "madvise", may first compact) 2 MB at a time: on
    the 55k T0 prompts at load 10 the process spent 1.1-4.5 s of system time, more than its user
    time, against 1.2-1.4 s without (`NUMPY_MADVISE_HUGEPAGE=0`, alternating runs). The setting is
    process-wide (numpy's own switch for that variable), so it is put back after each chunk.
    """
    from numpy._core import multiarray

    switch = getattr(multiarray, "_set_madvise_hugepage", None)
    if switch is None:  # another numpy: leave its default
        yield
        return
    before = switch(False)
    try:
        yield
    finally:
        switch(before)


def _agree(sig: np.ndarray, rows: np.ndarray, kept_sig: np.ndarray, slots: np.ndarray, need: float) -> np.ndarray:
    """The signature pre-filter for (chunk row, kept row) pairs: agreeing on `need` permutations."""
    ok = np.zeros(len(rows), dtype=bool)
    for lo in range(0, len(rows), 8192):  # small chunks: the compared rows stay in cache
        ok[lo:lo + 8192] = np.count_nonzero(sig[rows[lo:lo + 8192]] == kept_sig[slots[lo:lo + 8192]], axis=1) >= need
    return ok


_POWER = np.uint64(0x100000001B3)


def _sequence_hashes(n: int, text_of: np.ndarray, token_hash: np.ndarray) -> np.ndarray:
    """Per text, a 64-bit hash of its word sequence, as Python ints (None for a text without words)."""
    counts = np.bincount(text_of, minlength=n) if len(text_of) else np.zeros(n, np.int64)
    starts = np.cumsum(counts) - counts
    out = np.zeros(n, dtype=np.uint64)
    if len(token_hash):
        position = np.arange(len(token_hash)) - np.repeat(starts, counts)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.r_[np.uint64(1), np.full(int(counts.max()) - 1, _POWER)]) if counts.max() > 1 \
                else np.ones(1, np.uint64)
            terms = token_hash * powers[position]  # word hashes are already mixed
            has = counts > 0
            out[has] = np.add.reduceat(terms, starts[has])
            out = mix64(out ^ counts.astype(np.uint64))
    return _with_none(out, counts)


def _with_none(hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    values = hashes.astype(object)
    values[counts == 0] = None
    return values


__all__ = ["StreamingDedup", "Removal"]
