"""Static embeddings pooled from cached pieces equal model2vec's own encode (the real MiniLM tokenizer)."""

from __future__ import annotations

import numpy as np
from model2vec import StaticModel
from tokenizers import Tokenizer

from synthboot.embeddings import minilm_path
from synthboot.static_pool import PiecePool

TEXTS = [
    "Summarise the passage: the river rose in spring, and flooded the fields (again)!",
    "Café naïve ÉCOLE déjà-vu",  # accents: stripped by the normaliser inside a piece
    "中文字符 mixed with English",  # CJK characters: split by the normaliser
    "ab\x01cd e\u0301 tab\tsep\x0bvt",  # control characters deleted, joining their neighbours
    "nul\x00inside and\u00a0no-break\u2003spaces",
    "x" * 150,  # one piece past WordPiece's 100 characters: unknown, then dropped
    "",
    "   ",
    "snake_case and kebab-case and don't stop!!!",
    "İstanbul Straße",
    "word " * 700,  # past the 512-token limit: truncated inside a piece's tokens
    "supercalifragilistic " * 200 + "end",  # the limit falls inside a multi-token piece
]


def _model(dims: int = 16) -> StaticModel:
    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    vectors = np.random.default_rng(0).standard_normal((tokenizer.get_vocab_size(), dims)).astype(np.float32)
    return StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def test_pooled_pieces_equal_model2vec_encode():
    model = _model()
    expected = _unit(model.encode(TEXTS, use_multiprocessing=False).astype(np.float32))
    pool = PiecePool(model)
    # Two calls, the second seeing pieces the first taught the cache: the same vectors.
    got = np.vstack([pool.encode(TEXTS[:5]), pool.encode(TEXTS[5:])])
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.allclose(got, expected, atol=1e-5)
    assert not got[[5, 6, 7]].any()  # nothing to pool: zero rows, as model2vec gives
    assert np.array_equal(pool.encode(TEXTS), got)  # all from the cache now, bit for bit
