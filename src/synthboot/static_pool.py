"""Mean-pooled static (model2vec) embeddings from a cache of words, not a tokenizer call per text.

A static model's text vector is the mean of its tokens' vectors, and a BERT-style (WordPiece)
tokenizer cuts a text at whitespace and punctuation before splitting each piece into tokens on
its own. So a text's token-vector sum is the sum of its pieces' sums: each distinct piece is
tokenized once (by the model's own tokenizer), and a text is pooled from its pieces with one
sparse product. On the 55,185 T0 prompts model2vec's encode spent 16 s of CPU, nearly all of it
in the tokenizer; here the tokenizer sees each distinct piece once.

Pieces are cut where the tokenizer is sure to cut whatever the normaliser does: at ASCII space,
tab, newline and carriage return (whitespace to BERT's normaliser), and around each ASCII
punctuation character (a token of its own). Everything between is one piece, passed whole to the
tokenizer, which applies its own normalisation (lower case, accents, CJK, control characters)
and any further splits inside it. The result equals the model's own tokens, so the vectors
equal model2vec's `encode` up to its float16 rounding (checked in tests/test_static_pool.py).
Texts are cut to the model's character limit first, as model2vec does; a text whose tokens pass
the model's token limit is given to model2vec itself (its truncation cuts inside a piece).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

# A run of characters that are neither ASCII whitespace nor ASCII punctuation, or one ASCII
# punctuation character.
_PIECE = re.compile(r"[^ \t\n\r!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
_MARK = -1  # the id of the piece that ends a text


class PiecePool:
    """Pooled vectors of texts for one model2vec `StaticModel`; remembers every piece it has seen."""

    def __init__(self, model) -> None:
        self.model = model
        self._lock = threading.Lock()  # one cache, shared by the threads of a process
        if model.token_mapping is not None or model.weights is not None:
            raise ValueError("PiecePool pools plain static models (no token mapping or weights)")
        self.ids: dict[str, int] = {}  # piece -> its number
        self.size = 0
        # Each piece's known tokens, concatenated (`starts`: where each piece's begin): not a vector
        # per piece, which at 1M rows with typos (a million distinct pieces) would be 1 GB.
        self.tokens = np.zeros(4096, dtype=np.int32)
        self.starts = np.zeros(1025, dtype=np.int64)
        self.raw = np.zeros(1024, dtype=np.float32)  # tokens per piece, unknown ones too (the token limit counts them)
        self.vectors = np.asarray(model.embedding, dtype=np.float32)
        self.words: list[str] = []  # pieces by id
        self.ids["\0"] = _MARK
        self.chars = model.max_length * model.median_token_length if model.max_length else None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 rows, one per text (zeros for a text without tokens)."""
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        import pyarrow as pa
        from scipy.sparse import csr_matrix

        n = len(texts)
        if n == 0:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        cut = self.chars
        # One regex pass over the whole chunk: texts joined by a NUL between newlines, a piece of
        # its own that marks where each text ends. (BERT's normaliser deletes NULs, so one inside
        # a text is deleted first: the same tokens.)
        # ASCII texts are lowered here (fewer distinct pieces; the tokenizer lowers them anyway).
        joined = "\n\0\n".join(_lowered((t[:cut] if cut else t).replace("\0", "")) for t in texts)
        pieces = _PIECE.findall(joined)
        # Each distinct piece of the chunk is looked up once (pyarrow's hash table numbers them),
        # not every occurrence: 1M rows have about 100M piece occurrences.
        encoded = pa.array(pieces, type=pa.large_string()).dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        new = [piece for piece in distinct if piece not in self.ids]
        if new:
            self._learn(sorted(new))  # sorted: pieces are numbered, so summed, alike in every run
        number = np.fromiter(map(self.ids.__getitem__, distinct), dtype=np.int64, count=len(distinct))
        flat = number[encoded.indices.to_numpy(zero_copy_only=False)]
        is_mark = flat == _MARK
        marks = np.flatnonzero(is_mark)
        ends = np.concatenate([marks, [len(flat)]])
        starts = np.concatenate([[0], marks + 1])
        # Rows are consecutive runs of pieces: the matrix is built as CSR directly (a repeated
        # piece is two entries of 1, summed by the products below).
        cols = flat[~is_mark]
        indptr = np.concatenate([[0], np.cumsum(ends - starts)])
        table = csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(n, self.size))
        pieces_tokens = self._piece_tokens()
        out = np.asarray((table @ pieces_tokens) @ self.vectors, dtype=np.float32)
        if self.model.max_length:
            limit = self.model.max_length
            over = np.flatnonzero(table @ self.raw[:self.size] > limit)
            for k in over.tolist():
                out[k] = self._truncated(flat[starts[k]:ends[k]], limit)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _truncated(self, seq: np.ndarray, limit: int) -> np.ndarray:
        """The token-vector sum of a text's first `limit` tokens (the tokenizer's truncation)."""
        total = np.cumsum(self.raw[seq])
        whole = int(np.searchsorted(total, limit, side="right"))  # pieces that fit entirely
        first, stop = self.starts[seq[:whole]], self.starts[seq[:whole] + 1]
        lengths = stop - first
        at = np.arange(int(lengths.sum())) + np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
        out = self.vectors[self.tokens[at]].sum(axis=0)
        room = limit - (int(total[whole - 1]) if whole else 0)
        if room > 0 and whole < len(seq):
            ids = self._tokens([self.words[seq[whole]]])[0][:room]
            unk = self.model.unk_token_id
            out = out + self.vectors[[t for t in ids if t != unk]].sum(axis=0)
        return out

    def _learn(self, pieces: list[str]) -> None:
        """Tokenize new pieces with the model's tokenizer (limits off: a piece is never cut)."""

        model = self.model
        encoded = self._tokens(pieces)
        unk = model.unk_token_id
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        token = np.fromiter((t for ids in encoded for t in ids), dtype=np.int64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(len(pieces)), lengths)
        known = token != unk if unk is not None else np.ones(len(token), dtype=bool)
        kept = token[known].astype(np.int32)
        need = self.size + len(pieces)
        used = int(self.starts[self.size])
        self.tokens = _room(self.tokens, used + len(kept))
        self.tokens[used:used + len(kept)] = kept
        self.starts = _room(self.starts, need + 1)
        self.starts[self.size + 1:need + 1] = used + np.cumsum(np.bincount(owner[known], minlength=len(pieces)))
        self.raw = _room(self.raw, need)
        self.raw[self.size:need] = lengths
        self.size = need
        for piece in pieces:
            self.ids[piece] = len(self.words)
            self.words.append(piece)

    def _piece_tokens(self):
        """The pieces so far as a sparse (piece x vocabulary) matrix of token counts."""
        from scipy.sparse import csr_matrix

        starts = self.starts[:self.size + 1]
        data = np.ones(int(starts[-1]), dtype=np.float32)
        return csr_matrix((data, self.tokens[:starts[-1]], starts), shape=(self.size, len(self.vectors)))

    def _tokens(self, pieces: list[str]) -> list[list[int]]:
        """Each piece's token ids by the model's tokenizer, unknown ones included, limits off."""
        model = self.model
        model.tokenizer.no_truncation()
        try:
            return [e.ids for e in model.tokenizer.encode_batch_fast(pieces, add_special_tokens=False)]
        finally:
            model._set_max_length_in_tokenizer(model.max_length)


def _room(values: np.ndarray, size: int) -> np.ndarray:
    """`values`, grown by doubling to hold `size` items (chunks of texts keep adding pieces)."""
    if size <= len(values):
        return values
    bigger = np.zeros(max(size, 2 * len(values)), dtype=values.dtype)
    bigger[:len(values)] = values
    return bigger


def _lowered(text: str) -> str:
    return text.lower() if text.isascii() else text
