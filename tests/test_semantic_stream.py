"""Streamed semantic dedup (what `synthboot dedup FILE --method semantic` runs): planted copies at size,
recall against exact search, identical re-runs, chunk boundaries, only kept rows held."""

from __future__ import annotations

import json
import random

import numpy as np
from model2vec import StaticModel
from tokenizers import Tokenizer

from synthboot.dedup.file import dedup_file
from synthboot.dedup.semantic_stream import StreamingSemantic
from synthboot.embeddings import minilm_path
from synthboot.stages.dedup import SemanticLayer, dedup_texts

THRESHOLD = 0.9


def planted_vectors(n: int, copies: int, dim: int = 64, topics: int = 300, seed: int = 0
                    ) -> tuple[np.ndarray, dict[int, int], list[bool]]:
    """Unit rows around `topics` centres (rows of one topic at cosine ~0.5, below the threshold),
    with `copies` later rows replaced by a noisy copy of an earlier row (cosine ~0.97), and a few
    empty rows (zero vectors)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim))
    rows = centres[rng.integers(0, topics, n)] + rng.standard_normal((n, dim))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    later = rng.choice(np.arange(n // 5, n), size=copies, replace=False)
    originals = rng.choice(np.setdiff1d(np.arange(n // 5), later), size=copies)
    planted = {}
    for row, original in zip(later.tolist(), originals.tolist()):
        copy = rows[original] + 0.03 * rng.standard_normal(dim)
        rows[row] = copy / np.linalg.norm(copy)
        planted[row] = original
    empty = [False] * n
    for row in (3, n // 2 + 1):
        if row not in planted and row not in originals:
            rows[row] = 0
            empty[row] = True
    return rows.astype(np.float32), planted, empty


def streamed(vectors: np.ndarray, empty: list[bool], chunk: int, **options) -> tuple[dict, StreamingSemantic]:
    dedup = StreamingSemantic(SemanticLayer(THRESHOLD, "static"), **options)

    def chunks():  # an iterator: the pass never sees the rows after the current chunk
        for lo in range(0, len(vectors), chunk):
            yield vectors[lo:lo + chunk], empty[lo:lo + chunk]

    removed = {}
    for rows, flags in chunks():
        removed.update(dedup.add_vectors(rows, flags))
    return removed, dedup


def test_cells_find_every_planted_copy_and_match_exact_search_and_rerun_identically():
    vectors, planted, empty = planted_vectors(16_000, 1_500)
    removed, dedup = streamed(vectors, empty, 5_000)
    assert dedup._centroids is not None and len(dedup._centroids) > 1  # the cells were made (and remade)
    assert set(planted) <= set(removed)
    for row, (layer, matched, score) in removed.items():
        assert layer == "semantic" and matched < row and matched not in removed and not empty[matched]
        assert abs(float(vectors[row] @ vectors[matched]) - score) < 1e-3 and score >= THRESHOLD
    # Exact search (one cell holding every kept row): the cells' removals are nearly all of its removals.
    exact, _ = streamed(vectors, empty, 5_000, exact_kept=10**9)
    assert set(planted) <= set(exact)
    assert len(set(removed) & set(exact)) >= 0.99 * len(exact)
    # Identical re-runs, whatever the chunking (rebuilds happen at multiples of the micro-batch):
    # a copy whose original is in an earlier chunk is found there.
    for chunk in (3_001, 4_096, 50_000):
        again, _ = streamed(vectors, empty, chunk)
        assert again == removed


def test_only_kept_rows_are_held():
    vectors, planted, empty = planted_vectors(12_000, 3_000, seed=1)
    removed, dedup = streamed(vectors, empty, 2_500)
    assert dedup.rows == len(vectors)
    assert dedup.kept == len(vectors) - len(removed) - sum(empty)
    assert dedup._cells is not None and int(dedup._cells.size.sum()) == dedup.kept
    held = np.concatenate([dedup._cells.rows[c][:int(dedup._cells.size[c])] for c in range(len(dedup._cells.rows))])
    assert not set(held.tolist()) & set(removed) and not any(empty[r] for r in held.tolist())


def test_a_copy_within_one_micro_batch_and_copies_of_copies():
    # Row 1 copies row 0, row 2 copies row 1 (so also row 0): both go to row 0, the kept one.
    rng = np.random.default_rng(2)
    base = rng.standard_normal((50, 32))
    base[1] = base[0] + 0.01 * rng.standard_normal(32)
    base[2] = base[1] + 0.01 * rng.standard_normal(32)
    base[40] = base[2] + 0.01 * rng.standard_normal(32)  # in the next chunk
    vectors = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    removed, _ = streamed(vectors, [False] * 50, 30)
    assert {r: m for r, (_, m, _) in removed.items()} == {1: 0, 2: 0, 40: 0}


def _tiny_static_model(path) -> str:
    """A real model2vec static model on MiniLM's tokenizer with random token vectors (seconds to make)."""
    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    vectors = np.random.default_rng(0).standard_normal((tokenizer.get_vocab_size(), 32)).astype(np.float32)
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(path))
    return str(path)


def test_dedup_file_streams_semantic_as_the_in_process_layer_decides(tmp_path):
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8))) for _ in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(12, 30))) for _ in range(2_000)]
    for row in rng.sample(range(500, 2_000), 250):
        edited = texts[rng.randrange(500)].split()
        edited[rng.randrange(len(edited))] = rng.choice(words)
        texts[row] = " ".join(edited)
    texts[10] = ""
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in enumerate(texts)))
    model = _tiny_static_model(tmp_path / "model")
    batch = dedup_texts(list(enumerate(texts)), [SemanticLayer(0.85, model)]).removed
    assert len(batch) >= 200
    for chunk in (700, 65_536):
        out, pairs = tmp_path / f"kept{chunk}.jsonl", tmp_path / f"pairs{chunk}.jsonl"
        result = dedup_file(src, ["text"], out, methods="semantic", threshold=0.85, embedder=model,
                            pairs=pairs, chunk_rows=chunk)
        kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert kept == [k for k in range(len(texts)) if k not in batch]
        assert result.removed == {"semantic": len(batch)} and result.empty == 1
        found = {json.loads(line)["line"] - 1: json.loads(line)["duplicate_of_line"] - 1
                 for line in pairs.read_text().splitlines()}
        assert found == {k: m for k, (_, m, _) in batch.items()}
