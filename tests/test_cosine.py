"""Exact semantic search: the blocked, bounded search equals brute force, and dedup with it is repeatable."""

from __future__ import annotations

import numpy as np

from synthboot.dedup.cosine import cosine_links
from synthboot.stages.dedup import SemanticLayer, dedup_texts


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def planted(n: int, dims: int, copies: int, noise: float, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """Random unit vectors, stretched along some axes as real embeddings are, with `copies` rows
    replaced by noisy copies of an earlier original row: {copy row: original row}."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dims)) * np.linspace(3.0, 0.2, dims)
    rows = rng.choice(np.arange(n // 10, n), size=copies, replace=False)
    twins = {int(r): int(rng.integers(0, n // 10)) for r in rows}  # originals never copies
    for copy, original in twins.items():
        vectors[copy] = vectors[original] + noise * rng.standard_normal(dims) * np.linspace(3.0, 0.2, dims)
    return unit(vectors), twins


def brute_force(vectors: np.ndarray, threshold: float, k: int) -> set[tuple[int, int]]:
    sims = vectors @ vectors.T
    out = set()
    for i in range(len(vectors)):
        j = np.flatnonzero(sims[i, :i] >= threshold)
        best = j[np.lexsort((j, -np.round(sims[i, j].astype(np.float64), 5)))][:k]  # ties: within 1e-5
        out |= {(i, int(x)) for x in best}
    return out


def test_blocked_search_equals_brute_force_top_k():
    vectors, _ = planted(3000, 48, 200, 0.15, seed=1)
    vectors[2500:2520] = vectors[5]  # exact copies: equal scores, the earlier rows win the ties
    for head in (8, 48):
        i, j, score = cosine_links(vectors, 0.9, 4, head=head, block=512)
        assert set(zip(i.tolist(), j.tolist())) == brute_force(vectors, 0.9, 4)
        assert np.all(score >= 0.9)
    i, j, _ = cosine_links(vectors, 0.9, 4)
    assert [x for a, x in zip(i.tolist(), j.tolist()) if a == 2519] == [5, 2500, 2501, 2502]


class _PlantedLayer(SemanticLayer):
    """The semantic layer with each text ("row 17") embedded as a given vector: no model needed."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__(threshold=0.9)
        self.vectors = vectors

    def embed(self, texts):
        return self.vectors[[int(t.split()[1]) for t in texts]]


def test_semantic_dedup_at_size_is_repeatable_and_finds_every_planted_pair():
    # 12,000 rows (the old approximate index ran above 4,000): 300 noisy copies at cosine ~0.95-0.99.
    vectors, twins = planted(12_000, 128, 300, 0.02, seed=2)
    assert min(float(vectors[c] @ vectors[o]) for c, o in twins.items()) >= 0.93
    items = [(k, f"row {k}") for k in range(len(vectors))]
    first = dedup_texts(items, [_PlantedLayer(vectors)])
    second = dedup_texts(items, [_PlantedLayer(vectors)])
    assert first.removed == second.removed
    # Every copy is removed, as a copy of its own original (copies are never kept: no other match).
    assert set(first.removed) == set(twins)
    for copy, (layer, matched, score) in first.removed.items():
        assert layer == "semantic" and score >= 0.9
        assert matched == twins[copy]


def _pairs(i: np.ndarray, j: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(i.tolist(), j.tolist()))


def test_cells_search_recall_against_exact_and_repeatable():
    from threadpoolctl import threadpool_limits

    from synthboot.dedup.ivf import ivf_links

    # 10,000 rows, 400 planted copies at cosine ~0.93-0.99, some copied several times: the cells'
    # candidates, re-scored exactly, against the exact search.
    vectors, twins = planted(10_000, 64, 400, 0.03, seed=3)
    with threadpool_limits(limits=1, user_api="blas"):
        exact_i, exact_j, _ = cosine_links(vectors, 0.9, 16)
        i, j, score = ivf_links(vectors, 0.9, 16)
        again = ivf_links(vectors, 0.9, 16)
    assert all(np.array_equal(a, b) for a, b in zip((i, j, score), again))  # identical runs, identical links
    assert np.all(score >= 0.9) and np.all(j < i)
    assert np.allclose(score, np.einsum("ij,ij->i", vectors[i], vectors[j]), atol=1e-5)  # exact scores
    exact, found = _pairs(exact_i, exact_j), _pairs(i, j)
    assert len(found & exact) >= 0.99 * len(exact)
    assert set(i.tolist()) >= {c for c in twins}  # every planted copy has its match
    assert all((c, o) in found for c, o in twins.items())


def test_semantic_layer_above_the_exact_size_uses_cells(monkeypatch):
    import synthboot.dedup.ivf as ivf

    vectors, twins = planted(6_000, 48, 200, 0.02, seed=4)
    items = [(k, f"row {k}") for k in range(len(vectors))]
    exact = dedup_texts(items, [_PlantedLayer(vectors)])
    calls = []
    real = ivf.ivf_links
    monkeypatch.setattr(ivf, "EXACT_MAX", 1_000)
    monkeypatch.setattr(ivf, "ivf_links", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    through_cells = dedup_texts(items, [_PlantedLayer(vectors)])
    assert calls and through_cells.removed == exact.removed and set(exact.removed) == set(twins)


def test_cells_search_with_a_cell_of_copies_keeps_the_earliest_ties(monkeypatch):
    from threadpoolctl import threadpool_limits

    import synthboot.dedup.ivf as ivf

    # 1,500 exact copies of row 5 (all at cosine 1: ties) in one cell; small blocks, and a low
    # count for the cut to each row's k best, so the dense path runs in both directions.
    vectors, _ = planted(4_000, 32, 100, 0.03, seed=5)
    vectors[1000:2500] = vectors[5]
    monkeypatch.setattr(ivf, "_BLOCK", 512)
    monkeypatch.setattr(ivf, "_FEW", 1_000)
    with threadpool_limits(limits=1, user_api="blas"):
        exact_i, exact_j, _ = cosine_links(vectors, 0.9, 16)
        i, j, score = ivf.ivf_links(vectors, 0.9, 16, cells=40)
    exact, found = _pairs(exact_i, exact_j), _pairs(i, j)
    copies = set(range(1000, 2500))
    assert {p for p in found if p[0] in copies} == {p for p in exact if p[0] in copies}
    assert [x for a, x in zip(i.tolist(), j.tolist()) if a == 2499] == [5, *range(1000, 1015)]
    assert len(found & exact) >= 0.99 * len(exact)
