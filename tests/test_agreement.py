"""Field agreement: exact for labels and integers, tolerance for floats, embeddings for text, Jaccard for lists."""

from __future__ import annotations

import pytest

from synthboot.agreement import compare
from synthboot.embeddings import get_embedder


@pytest.mark.parametrize("kind, generated, predicted, agree", [
    ("enum", "billing", "Billing", True),
    ("enum", "billing", "bug", False),
    ("int", 42, "42", True),
    ("int", 42, 42.0, True),
    ("int", 42, 43, False),
    ("int", 42, None, False),
    ("bool", True, "true", True),
    ("bool", True, False, False),
    ("float", 0.1 + 0.2, 0.3, True),
    ("float", 3.14, 3.15, False),
    ("list", ["Battery", "screen"], ["screen", "battery "], True),
    ("list", ["battery", "screen", "price"], ["camera"], False),
    ("list", [], [], True),
])
def test_exact_number_and_list_agreement(kind, generated, predicted, agree):
    assert compare(kind, generated, predicted, threshold=0.5).agree is agree


def test_float_tolerance_is_absolute_or_relative():
    assert compare("float", 100.0, 101.0, tolerance=0.02).agree
    assert not compare("float", 100.0, 103.0, tolerance=0.02).agree


def test_text_agreement_on_the_packaged_minilm():
    embedder = get_embedder("local")
    same = compare("str", "Lists are mutable, tuples are immutable.",
                   "A list can be changed after it is created; a tuple cannot.", threshold=0.6, embedder=embedder)
    other = compare("str", "Lists are mutable, tuples are immutable.",
                    "The GIL lets only one thread run Python bytecode at a time.", threshold=0.6, embedder=embedder)
    assert same.agree and same.match == "embedding" and same.score >= 0.6
    assert not other.agree and other.score < 0.6
    # Normalised and numeric matches need no embedding.
    assert compare("str", "Paris.", "paris", embedder=embedder).match == "normalized"
    assert compare("str", "1,000", "1000", embedder=embedder).agree
    # Short different answers embed close; they need a near-identical embedding.
    assert not compare("str", "Paris", "Lyon", threshold=0.6, embedder=embedder).agree
