"""Streaming dedup (what `synthboot dedup` runs for exact and MinHash): the batch greedy's removals, chunk by chunk."""

from __future__ import annotations

import json
import random

from synthboot.dedup.file import dedup_file
from synthboot.dedup.stream import StreamingDedup
from synthboot.stages.dedup import ExactLayer, MinHashLayer, dedup_texts, shingles


def corpus(n: int, copies: int, seed: int = 0) -> tuple[list[str], dict[int, int]]:
    """Random 30-60 word texts, with `copies` later rows replaced by an earlier row with one or
    two words edited (Jaccard >= 0.85 to it) or re-cased and re-punctuated (an exact copy)."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
                  for _ in range(20_000)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(30, 60))) for _ in range(n)]
    planted = {}
    for row in rng.sample(range(n // 5, n), copies):
        original = rng.randrange(n // 5)
        words = texts[original].split()
        if rng.random() < 0.3:
            texts[row] = texts[original].upper().replace(" ", ", ")
        else:
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            texts[row] = " ".join(words)
        planted[row] = original
    texts[5] = texts[7] = ""
    return texts, planted


def streamed(texts: list[str], chunk: int, layers) -> dict:
    dedup = StreamingDedup(layers)
    removed = {}
    for lo in range(0, len(texts), chunk):
        removed.update(dedup.add(texts[lo:lo + chunk]))
    return removed


def test_streaming_removes_what_the_batch_greedy_removes_and_every_planted_copy():
    texts, planted = corpus(20_000, 1500)
    batch = dedup_texts(list(enumerate(texts)), [ExactLayer(), MinHashLayer(0.85)]).removed
    for chunk in (3_001, 50_000):  # many chunks, and one
        removed = streamed(texts, chunk, [ExactLayer(), MinHashLayer(0.85)])
        assert {k: v[0] for k, v in removed.items()} == {k: v[0] for k, v in batch.items()}
        assert set(planted) <= set(removed)
    for row, (layer, matched, score) in removed.items():
        assert matched < row and matched not in removed
        a, b = shingles(texts[row]), shingles(texts[matched])
        assert score == (1.0 if layer == "exact" else round(len(a & b) / len(a | b), 4)) and score >= 0.85
    # Exact copies are MinHash matches at Jaccard 1 too: MinHash alone removes the same rows.
    assert set(streamed(texts, 3_001, [MinHashLayer(0.85)])) == set(batch)


def test_dedup_file_streams_a_file_with_blank_lines_and_names_lines(tmp_path):
    texts, planted = corpus(3_000, 200, seed=1)
    src = tmp_path / "rows.jsonl"
    with open(src, "w") as fh:
        for k, text in enumerate(texts):
            fh.write(json.dumps({"id": k, "text": text}) + "\n" + ("\n" if k % 1000 == 0 else ""))
    out, pairs = tmp_path / "kept.jsonl", tmp_path / "pairs.jsonl"
    result = dedup_file(src, ["text"], out, methods=["exact", "minhash"], threshold=0.85, pairs=pairs, chunk_rows=700)
    batch = dedup_texts(list(enumerate(texts)), [ExactLayer(), MinHashLayer(0.85)]).removed
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert kept == [k for k in range(len(texts)) if k not in batch] and result.kept == len(kept)
    assert result.rows == 3_000 and result.empty == 2 and sum(result.removed.values()) == len(batch)
    lines = src.read_text().splitlines()
    for pair in map(json.loads, pairs.read_text().splitlines()):
        assert json.loads(lines[pair["duplicate_of_line"] - 1])["id"] in kept
        assert json.loads(lines[pair["line"] - 1])["text"] == pair["text"]["text"]
