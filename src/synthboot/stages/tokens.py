"""Word tokens of many texts at once, on numpy: the same words as `re.findall(r"\\w+", text.lower())`.

MinHash dedup of 55k prompts spent most of its time making a Python string per word and a Python
set per text. Here texts are lowered, joined and turned into arrays of code points; words are the
runs of word characters (classified with Python's own `\\w`, so Unicode words match the regex
exactly), and each word is hashed once by a polynomial hash taken from a prefix sum. The hashes
are then numbered in first-seen order, which the texts alone fix: the same ids in every process
(no per-process string hashing is involved). Two distinct words share a 64-bit hash with
negligible probability (about 1e-10 for 50k distinct words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

_WORD = re.compile(r"\w")
_ASCII_WORD = np.array([_WORD.match(chr(c)) is not None for c in range(128)])
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2**64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 2**64))
_CHUNK = 2048  # texts per block: bounds the code point arrays (8 bytes per character) in memory


def word_tokens(texts: Sequence[str], threads: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(text index, word id) of every word occurrence, in text order; ids number distinct words from 0."""
    blocks = [(lo, texts[lo:lo + _CHUNK]) for lo in range(0, len(texts), _CHUNK)]
    # numpy releases the GIL: blocks on two threads use both cores.
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda block: _block_hashes(*block), blocks))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    text_of = np.concatenate([p[0] for p in parts])
    ids, _ = pd.factorize(np.concatenate([p[1] for p in parts]))
    return text_of, ids.astype(np.int64)


def _block_hashes(first: int, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, word hash) of the words of `texts`, the first of which has index `first`."""
    lowered = [t.lower() for t in texts]
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    # One separator between texts: it is not a word character, so no word spans two texts.
    codes = np.frombuffer("\n".join(lowered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts, ends = _word_spans(codes)
    text_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    text_of = first + np.searchsorted(text_starts, starts, side="right") - 1
    return text_of.astype(np.int64), _span_hashes(codes, starts, ends)


def _word_spans(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of the maximal runs of word characters."""
    ascii_ = codes < 128
    is_word = _ASCII_WORD[np.where(ascii_, codes, 0)]
    if not ascii_.all():  # each distinct non-ASCII code point classified once by Python's regex
        others = np.unique(codes[~ascii_])
        verdict = np.array([_WORD.match(chr(c)) is not None for c in others.tolist()])
        is_word[~ascii_] = verdict[np.searchsorted(others, codes[~ascii_])]
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per span, sum of c_k * B**(k - start) mod 2**64, from one prefix sum over all code points.

    numpy's unsigned arithmetic wraps modulo 2**64; dividing by B**start is multiplying by the
    inverse power. The span length is mixed in as well.
    """
    n = len(codes)
    powers = np.cumprod(np.full(n, _BASE, dtype=np.uint64)) * _BASE_INV  # B**k, k = 0..n-1
    inverse = np.cumprod(np.full(n, _BASE_INV, dtype=np.uint64)) * _BASE  # B**-k
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(codes * powers, dtype=np.uint64)])
    hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
    return hashes ^ (ends - starts).astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
