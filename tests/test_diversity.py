"""Diversity metrics: distributions against targets, entropy, distinct-n, embedding spread, seed copying."""

from __future__ import annotations

import pytest

from synthboot.loader import parse_spec
from synthboot.stages.diversity import distinct_n, entropy, measure
from synthboot.status import run_status
from synthboot.store import Candidate
from tests.conftest import TINY_SPEC

SPEC = parse_spec(TINY_SPEC)


def cand(i: int, question: str, difficulty: str, topic: str) -> Candidate:
    return Candidate(id=i, origin="lm", fields={"question": question, "answer": "An answer.", "difficulty": difficulty},
                     topic=topic, round=0)


def test_entropy_and_distinct_n():
    assert entropy({"a": 5, "b": 5}) == pytest.approx(1.0)
    assert entropy({"a": 10, "b": 0}) == 0.0
    assert entropy({"a": 1, "b": 1, "c": 2}) == pytest.approx(0.946, abs=1e-3)
    assert distinct_n(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)


def test_distributions_against_the_seed_mix_and_even_topics_with_warnings():
    examples = [cand(i, f"Question number {i} about files?", "medium", "file-io") for i in range(8)]
    examples += [cand(8, "How do threads share memory?", "easy", "concurrency"),
                 cand(9, "How do threads share memory?", "easy", "concurrency")]
    report = measure(examples, SPEC)
    assert report.distributions["difficulty"] == {"easy": 2, "medium": 8, "hard": 0}
    assert report.targets["difficulty"] == {"easy": 0.3, "medium": 0.4, "hard": 0.3}  # the seed's healthy mix
    assert report.targets["topic"] == {"file-io": 0.5, "concurrency": 0.5}
    assert report.divergence["difficulty"] == pytest.approx(0.4)  # |.2-.3| + |.8-.4| + |0-.3|, halved
    assert report.divergence["topic"] == pytest.approx(0.3)
    assert 0 < report.entropy["difficulty"] < 1
    assert report.distinct["distinct-1"] < 1
    text = " ".join(report.warnings)
    assert "less than 15% hard" in text and "low topic diversity" in text and "difficulty mix is 40% off" in text
    assert report.nn_distance is None  # no embeddings unless asked


def test_embedding_metrics_find_seed_copies_and_close_neighbours():
    seeds = [{"question": "What is a decorator in Python?"}]
    examples = [cand(1, "What is a decorator in Python?", "easy", "file-io"),
                cand(2, "How do I read a CSV file with the csv module?", "hard", "file-io"),
                cand(3, "How can I read a CSV file using Python's csv module?", "medium", "concurrency")]
    report = measure(examples, SPEC, seeds=seeds, embeddings=True)
    assert report.near_seed_rate == pytest.approx(1 / 3, abs=1e-3)  # rounded to 4 places
    assert report.seed_similarity is not None and report.seed_similarity > 0.3
    assert 0 <= report.nn_distance < 0.5  # two paraphrases are each other's nearest neighbour
    assert any("copy a seed" in w for w in report.warnings)  # 33% is above the 30% default
    report = measure(examples[:1], SPEC, seeds=seeds, embeddings=True)
    assert report.near_seed_rate == 1.0 and any("copy a seed" in w for w in report.warnings)


def test_status_shows_the_metrics_the_run_recorded(tiny_run):
    d = run_status(tiny_run).diversity
    assert d is not None and d.total >= 1
    assert set(d.distinct) == {"distinct-1", "distinct-2"}
    assert d.seed_similarity is not None  # recorded by the pipeline with the embedder
    if d.total > 1:
        assert d.nn_distance is not None
