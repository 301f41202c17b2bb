"""Word tokens of many texts at once: the same words as `re.findall(r"\\w+", text.lower())`, as ids.

MinHash dedup of 55k prompts spent most of its time making a Python string per word and a Python
set per text. Here texts are lowered, joined and encoded to UTF-8 in blocks; word characters are
found with a byte table (ASCII) and Python's own `\\w` for the few other characters (so Unicode
words match the regex exactly); words are the runs of word bytes. The word bytes, packed without
gaps, are the data of one Arrow binary array, one element per word, which Arrow's hash table
numbers in C: exact, and no Python object per word. Ids are given in first-seen order, which the
texts alone fix: the same in every process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w")
# Word bytes among ASCII; bytes >= 0x80 are parts of other characters, classified apart.
_ASCII_WORD = np.array([c < 128 and _WORD.match(chr(c)) is not None for c in range(256)])
_CHUNK = 2048  # texts per block: bounds the block's byte arrays in memory


def word_tokens(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, word id) of every word occurrence, in text order; ids number distinct words from 0."""
    text_of, ids, _ = words_and_vocabulary(texts)
    return text_of, ids


def words_and_vocabulary(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, object]:
    """`word_tokens`, and the distinct words (UTF-8, an Arrow binary array) in the order of their ids."""
    import pyarrow as pa  # here: a costly import that the CLI's other commands skip
    import pyarrow.compute as pc

    blocks = [_block_words(texts[lo:lo + _CHUNK]) for lo in range(0, len(texts), _CHUNK)]
    if not blocks:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), pa.array([], type=pa.large_binary())
    chunks = [words for _, words in blocks]
    if len({words.type for words in chunks}) > 1:  # a block of over 2 GB of words: all as large_binary
        chunks = [words.cast(pa.large_binary()) for words in chunks]
    # One hash table over all the blocks' words: ids agree between blocks. Blocks are not
    # concatenated first: copying hundreds of MB into fresh pages costs more than the hashing.
    encoded = pc.dictionary_encode(pa.chunked_array(chunks))
    # (Arrow may drop empty chunks: they hold no word, so the order of the ids is unchanged.)
    # The indices' buffer read directly: `to_numpy()` imports pandas (0.3-0.7 s, more than the encoding).
    ids = np.concatenate([np.zeros(0, dtype=np.int32)] + [_int32_values(chunk.indices) for chunk in encoded.chunks])
    # Every chunk carries the whole dictionary.
    vocabulary = encoded.chunks[0].dictionary if encoded.num_chunks else pa.array([], type=pa.large_binary())
    # Each word's text, made once from the words per text (not a block's array each, then a copy).
    counts = np.concatenate([counts for counts, _ in blocks])
    return np.repeat(np.arange(len(texts), dtype=np.int32), counts), ids, vocabulary


def _int32_values(array) -> np.ndarray:
    """The values of an Arrow int32 array without nulls, as a numpy view of its buffer."""
    if len(array) == 0:
        return np.zeros(0, dtype=np.int32)
    return np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + len(array)]


_POLY_BASE = np.uint64(0x100000001B3)  # odd: the powers never collapse to 0 mod 2**64


def content_hashes(values) -> np.ndarray:
    """A 64-bit hash of each value of an Arrow binary array, from its bytes alone.

    The same bytes hash the same in any process and in any batch of texts, which is what lets a
    block of texts on a Ray worker compute exactly the MinHash signatures the whole corpus gets
    here. Vectorised: a polynomial over the bytes (mod 2**64), then SplitMix64's finaliser mixes
    the bits so that similar words land far apart.
    """
    import pyarrow as pa

    values = values.cast(pa.large_binary())
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8) if values.buffers()[2] is not None \
        else np.zeros(0, dtype=np.uint8)
    data = data[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.r_[np.uint64(1), np.full(max(0, int(lengths.max(initial=0)) - 1), _POLY_BASE)])
        from_end = np.repeat(offsets[1:], lengths) - 1 - np.arange(len(data))
        terms = (data.astype(np.uint64) + np.uint64(1)) * powers[from_end]
        sums = np.zeros(n, dtype=np.uint64)
        nonempty = lengths > 0
        if len(terms):
            sums[nonempty] = np.add.reduceat(terms, offsets[:-1][nonempty])
        return mix64(sums ^ lengths.astype(np.uint64))


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _block_words(texts: Sequence[str]) -> tuple:
    """(words per text, the words as an Arrow binary array) of `texts`."""
    import pyarrow as pa

    # Each text lowered on its own: bytes.lower() for ASCII texts (several times faster than
    # str.lower() on a block holding any non-ASCII text), str.lower() for the others. Joined by
    # one separator, not a word character, so no word spans two texts.
    pieces = [t.encode("ascii").lower() if t.isascii() else t.lower().encode("utf-8", "surrogatepass") for t in texts]
    # A separator before the first text and after the last too: every word starts and ends
    # between two bytes of `data`, so its edges are where is_word changes, found in one comparison.
    data = np.frombuffer(b"\n".join([b"", *pieces, b""]), dtype=np.uint8)
    is_word = _ASCII_WORD[data]
    if (data >= 0x80).any():
        _mark_non_ascii_words(data, is_word)
    edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    # Words per text, from where each text's separator falls among the word starts.
    sizes = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(texts))
    counts = np.diff(np.searchsorted(starts, 1 + np.cumsum(sizes + 1)), prepend=0)
    lengths = ends - starts
    # The word bytes packed without gaps; 32-bit offsets (half the memory) unless over 2 GB.
    small = len(data) < 2**31 - 1
    offsets = np.zeros(len(starts) + 1, dtype=np.int32 if small else np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.binary() if small else pa.large_binary()
    words = pa.Array.from_buffers(kind, len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data[is_word])])
    return counts, words


def _mark_non_ascii_words(data: np.ndarray, is_word: np.ndarray) -> None:
    """Set `is_word` on every byte of each non-ASCII character that Python's regex calls `\\w`."""
    lead = np.flatnonzero(data >= 0xC0)  # first byte of each multi-byte character
    first = data[lead].astype(np.int64)
    size = 2 + (first >= 0xE0) + (first >= 0xF0)
    # Decode the code point: the lead byte's low bits, then 6 bits per continuation byte.
    point = first & (0xFF >> (size + 1))
    for k in range(1, 4):
        more = size > k
        point[more] = (point[more] << 6) | (data[lead[more] + k] & 0x3F)
    distinct = unique_sorted(point.copy())  # a copy: `point` is used below, in its order
    verdict = np.array([_WORD.match(chr(c)) is not None for c in distinct.tolist()], dtype=bool)
    word = verdict[np.searchsorted(distinct, point)]
    for k in range(4):
        is_word[lead[word & (size > k)] + k] = True


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: np.unique's result, but from one sort and one comparison.

    np.unique (numpy 2.4) took 18 s on 9M int64 keys here, where np.sort takes 0.2 s. `values`
    is sorted in place (callers pass temporaries: no copy of millions of values).
    """
    values.sort()
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values
