"""The rule library: each built-in rule, custom rules, bad rules as spec errors, parse failures as a reason."""

from __future__ import annotations

import json
import textwrap

import pytest

import synthboot
from synthboot.errors import SpecError
from synthboot.lm.scripted import scripted_lm
from synthboot.rules import compile_rules
from synthboot.schema import TaskSchema
from synthboot.loader import parse_spec
from synthboot.spec import RuleSpec
from synthboot.store import Store
from tests.conftest import TINY_SPEC, tiny_spec

SPEC = parse_spec(TINY_SPEC)
SCHEMA = TaskSchema.from_spec(SPEC)
GOOD = {"question": "How do I read a file line by line in Python?",
        "answer": "Iterate over the open file object: for line in open(path).", "difficulty": "easy"}


def check(rule: dict, example: dict) -> str | None:
    [(_, fn)] = compile_rules([RuleSpec(name="r", **rule)], SCHEMA)
    return fn(example)


@pytest.mark.parametrize("rule, bad", [
    ({"check": "min_length", "field": "answer", "value": 20}, {"answer": "Use open()."}),
    ({"check": "max_length", "field": "question", "value": 60}, {"question": "How " + "really " * 10 + "?"}),
    ({"check": "enum", "field": "difficulty"}, {"difficulty": "trivial"}),
    ({"check": "enum", "field": "question", "values": [GOOD["question"]]}, {"question": "What else?"}),
    ({"check": "regex", "field": "question", "pattern": r"\?$"}, {"question": "Read a file in Python"}),
    ({"check": "regex", "field": "answer", "pattern": r"(?i)\bi don't know\b", "params": {"forbid": True}},
     {"answer": "I don't know the answer to that one."}),
    ({"check": "banned_phrases", "field": "answer", "phrases": ["for example", "etc."]},
     {"answer": "Use a loop, readlines, etc. to read each line."}),
    ({"check": "answer_leak"}, {"question": "Is it true that iterate over the open file object: for line in open(path)?"}),
    ({"check": "placeholder"}, {"answer": "[insert answer here]"}),
    ({"check": "placeholder"}, {"answer": "N/A"}),
    ({"check": "placeholder"}, {"answer": "A concise, factual answer"}),  # its own field description
    ({"check": "language"}, {"answer": "Iterar sobre el objeto archivo abierto con un bucle for en cada línea del código."}),
    ({"check": "language"}, {"answer": "Итерируйте по открытому файлу в цикле for, строка за строкой."}),
])
def test_each_rule_passes_a_good_example_and_names_what_is_wrong_with_a_bad_one(rule, bad):
    assert check(rule, GOOD) is None
    detail = check(rule, {**GOOD, **bad})
    assert isinstance(detail, str) and detail


def test_placeholder_rule_does_not_flag_ordinary_words():
    assert check({"check": "placeholder"}, {**GOOD, "question": "How would you design a todo list app in Python?"}) is None


def test_custom_rules_pass_fail_explain_and_take_params(tmp_path, monkeypatch):
    (tmp_path / "my_rules.py").write_text(textwrap.dedent('''
        def mentions_python(example):
            return "python" in example["question"].lower()
        def short_answer(example, limit=10):
            return None if len(example["answer"]) <= limit else f"answer longer than {limit}"
        def broken(example):
            raise KeyError("nope")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check({"check": "my_rules:mentions_python"}, GOOD) is None
    assert "returned False" in check({"check": "my_rules:mentions_python"}, {**GOOD, "question": "What is a monad?"})
    assert check({"check": "my_rules:short_answer", "params": {"limit": 100}}, GOOD) is None
    assert check({"check": "my_rules:short_answer"}, GOOD) == "answer longer than 10"
    assert "raised KeyError" in check({"check": "my_rules:broken"}, GOOD)


@pytest.mark.parametrize("rule, where", [
    ({"check": "no_such_rule"}, "rules[0].check"),
    ({"check": "min_length", "value": 3}, "rules[0].field"),
    ({"check": "max_length", "field": "answer"}, "rules[0].value"),
    ({"check": "regex", "field": "answer", "pattern": "("}, "rules[0].pattern"),
    ({"check": "banned_phrases", "field": "answer"}, "rules[0].phrases"),
    ({"check": "enum", "field": "answer"}, "rules[0].values"),
    ({"check": "nosuchmodule_xyz:fn"}, "rules[0].check"),
])
def test_a_bad_rule_is_a_spec_error_naming_its_field(rule, where):
    with pytest.raises(SpecError, match=rf"^{where.replace('[', '.').replace(']', '.')}"):
        compile_rules([RuleSpec(name="r", **rule)], SCHEMA)


def test_parse_failures_and_every_rule_are_counted_reasons_never_silent_drops(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(tiny_spec(per_topic=3, per_call=3) + "dedup: {semantic: false}\n")
    good = {"question": "How do I open a file for appending in Python?", "answer": "open(path, 'a') appends.",
            "difficulty": "easy"}
    replies = [
        json.dumps({"examples": [good, {**good, "question": "Q?", "answer": "short"},
                                 {**good, "question": "What is asyncio used for in Python?", "difficulty": "trivial"}]}),
        '{"examples": [{"question": "How do threads share memory?", "answer": "They share the proc',  # cut off
    ]
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm(replies))
    [validate] = [s for s in result.stages if s.stage == "validate"]
    assert validate.decided == 4
    assert validate.rejected == {"answer_too_short": 1, "schema_error": 1, "parse_error": 1}
    with Store(tmp_path / "run") as store:
        reasons = [d.reason for d in store.decisions("validate").values() if not d.kept]
        details = [d.details for d in store.decisions("validate").values() if not d.kept]
    assert sorted(reasons) == ["answer_too_short", "parse_error", "schema_error"]
    assert all(details)
