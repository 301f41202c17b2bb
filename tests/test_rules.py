"""The rule library: each built-in rule, custom rules, bad rules as spec errors, parse failures as a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import synthboot
from synthboot.cli import main
from synthboot.errors import SpecError
from synthboot.lm.scripted import scripted_lm
from synthboot.rules import RuleRaised, compile_rules
from synthboot.schema import TaskSchema
from synthboot.loader import parse_spec
from synthboot.spec import RuleSpec
from synthboot.stages.validate import MAX_IDENTICAL_RULE_ERRORS, RuleError
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
    with pytest.raises(RuleRaised, match="raised KeyError"):  # a broken rule, not a verdict on the example
        check({"check": "my_rules:broken"}, GOOD)


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


# -- issue 12, bug 5: custom rule code in the settings hash; a rule that raises is a rule error ----

SIX = [{"question": f"How does {w} work when reading files in Python?", "answer": f"The {w} call does one thing well.",
        "difficulty": "easy"} for w in ("seek", "flush", "truncate", "readline", "tell", "fileno")]


def _rule_spec(tmp_path, module: str, function: str) -> synthboot.Spec:
    """The tiny spec (two calls of three rows) with one custom rule named `custom`; no fuzzy dedup."""
    text = tiny_spec(per_topic=3, per_call=3).replace(
        "rules:\n", f"rules:\n  - {{name: custom, check: '{module}:{function}'}}\n")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text + "dedup: {minhash: false, semantic: false}\n")
    return synthboot.load_spec(spec_path)


def _replies() -> list[str]:
    return [json.dumps({"examples": SIX[:3]}), json.dumps({"examples": SIX[3:]})]


def test_editing_a_custom_rule_decides_the_stored_candidates_again(tmp_path, monkeypatch):
    module = tmp_path / "edited_rule.py"
    module.write_text("def check(example):\n    return 'not yet'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = _rule_spec(tmp_path, "edited_rule", "check")
    synthboot.run(spec, tmp_path / "run", lm=scripted_lm(_replies()))
    assert synthboot.run_status(tmp_path / "run").funnel.rejected["validate"]["custom"] == 6
    # The user edits the function and runs the same spec again: a new process, which imports the new code.
    module.write_text("def check(example):\n    return True\n")
    again = subprocess.run(
        [sys.executable, "-c", "import sys, synthboot\nfrom synthboot.lm.scripted import scripted_lm\n"
         "print(synthboot.run(sys.argv[1], sys.argv[2], lm=scripted_lm([])).lm_calls_made)",
         str(tmp_path / "spec.yaml"), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == "0"  # no LM call: decided again from the store
    status = synthboot.run_status(tmp_path / "run")
    assert "custom" not in status.funnel.rejected.get("validate", {}) and status.funnel.kept == 6


def test_a_rule_that_raises_is_a_rule_error_and_stops_the_stage(tmp_path, monkeypatch, capsys):
    (tmp_path / "raising_rule.py").write_text("def check(example):\n    return 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = _rule_spec(tmp_path, "raising_rule", "check")
    with pytest.raises(RuleError) as info:
        synthboot.run(spec, tmp_path / "run", lm=scripted_lm(_replies()))
    message = str(info.value)
    assert "'custom'" in message and "ZeroDivisionError: division by zero" in message and "\n" not in message
    assert info.value.exit_code == 2
    # The first few identical errors are recorded (reason and message); the rest wait, undecided.
    with Store(tmp_path / "run") as store:
        decided = store.decisions("validate")
    assert [d.reason for d in decided.values()] == ["rule_error:custom"] * MAX_IDENTICAL_RULE_ERRORS
    assert "ZeroDivisionError" in next(iter(decided.values())).details["rule_errors"]["custom"]
    assert synthboot.run_status(tmp_path / "run").rule_errors == {
        "custom": (MAX_IDENTICAL_RULE_ERRORS, "raising_rule:check raised ZeroDivisionError: division by zero")}
    assert main(["status", str(tmp_path / "run")]) == 0
    assert "RULE ERROR: rule 'custom' raised on 3 candidate(s)" in capsys.readouterr().out
    # Running again with the rule still broken stops again: never a silent exit 0 with all rejected.
    with pytest.raises(RuleError):
        synthboot.run(spec, tmp_path / "run", lm=scripted_lm([]))


def test_a_rule_that_raises_on_one_example_records_it_and_the_run_goes_on(tmp_path, monkeypatch):
    (tmp_path / "picky_rule.py").write_text(
        "def check(example):\n    if 'fileno' in example['question']:\n        raise ValueError('no fileno')\n"
        "    return True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    synthboot.run(_rule_spec(tmp_path, "picky_rule", "check"), tmp_path / "run", lm=scripted_lm(_replies()))
    status = synthboot.run_status(tmp_path / "run")
    assert status.funnel.rejected["validate"] == {"rule_error:custom": 1}
    assert status.rule_errors == {"custom": (1, "picky_rule:check raised ValueError: no fileno")}
    assert status.funnel.kept == 5


def test_the_rule_hash_follows_the_code_that_runs(tmp_path, monkeypatch):
    """Edited on disk but not re-imported, the old code still runs: the hash must not claim otherwise."""
    from synthboot.rules import custom_rule_sources

    module = tmp_path / "hashed_rule.py"
    module.write_text("def check(example):\n    return len(example['answer']) > 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rules = [RuleSpec(name="custom", check="hashed_rule:check")]
    first = custom_rule_sources(rules)
    module.write_text("# a comment\n\ndef check(example):\n    return len(example['answer']) > 50\n")
    assert custom_rule_sources(rules) == first  # this process still runs the first version
    monkeypatch.delitem(sys.modules, "hashed_rule")
    assert custom_rule_sources(rules) != first  # a new import: new code, new hash
