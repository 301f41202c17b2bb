"""The demo spec's filters on the kind of items a good generator writes (the README's `make demo`).

Short quiz questions follow one template ("What is X in Python?"), so they share most of their
words: the spec's dedup must tell a different subject from a restated question, and its
`vague_answer` rule must let an answer name concrete examples. Real MiniLM, no LM.
"""

from __future__ import annotations

import synthboot
from synthboot.rules import compile_rules
from synthboot.schema import TaskSchema
from synthboot.stages.dedup import dedup_records, make_layers

from .conftest import EXAMPLE_SPEC

SPEC = synthboot.load_spec(EXAMPLE_SPEC)


def _questions(*texts: str) -> list[tuple[int, dict]]:
    return [(i, {"question": t}) for i, t in enumerate(texts)]


def test_templated_questions_on_different_subjects_are_all_kept():
    items = _questions("What is a stack in Python?", "What is a queue in Python?",
                       "What is the purpose of the os module in Python?",
                       "What is the purpose of the sys module in Python?",
                       "What is the difference between a dictionary and a list in Python?",
                       "How do you read a file in Python?", "How do you write a new file in Python?")
    seeds = [(100 + i, s) for i, s in enumerate(SPEC.seeds)]  # one seed asks about a list and a tuple
    outcome = dedup_records(items, make_layers(SPEC), SPEC.dedup.fields or ["question"], reference=seeds)
    assert outcome.removed == {}


def test_restated_question_and_seed_copy_are_removed():
    items = _questions("What is the purpose of the `print()` function in Python?",
                       "What is the purpose of the `print` statement in Python?",
                       "What is the difference between a list and a tuple in Python?")
    seeds = [(100 + i, s) for i, s in enumerate(SPEC.seeds)]
    outcome = dedup_records(items, make_layers(SPEC), SPEC.dedup.fields or ["question"], reference=seeds)
    assert outcome.kept == [0]
    assert outcome.removed[1][:2] == ("semantic", 0)
    assert outcome.removed[2][:2] == ("exact", 100)


def test_vague_answer_rejects_trailing_off_not_concrete_examples():
    schema = TaskSchema.from_spec(SPEC)
    (rule, check), = [(r, c) for r, c in compile_rules(SPEC.rules, schema) if r.name == "vague_answer"]
    concrete = {"question": "What are some common Python error types?",
                "answer": "Built-in ones such as TypeError and ValueError. For example, 1/0 raises ZeroDivisionError."}
    trailing = {"question": "What are some common Python error types?",
                "answer": "TypeError, ValueError, KeyError, etc."}
    assert check(concrete) is None
    assert check(trailing) == "answer contains 'etc.'"
