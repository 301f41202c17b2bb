"""The pipeline end to end: stages, store, resume and re-filtering.

Scripted replies make the stage logic exact; the embedded model proves it on the real thing.
"""

from __future__ import annotations

import json
import re
import sqlite3

import dspy
import pytest

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.status import run_status

from .conftest import EXAMPLE_SPEC, REPO


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def qa_reply(prompt: str) -> str:
    """`count` examples per call: one copies a seed, one has a too-short answer, the rest are distinct."""
    topic = re.search(r"\[\[ ## topic ## \]\]\n(.*)\n", prompt).group(1)
    count = int(re.search(r"\[\[ ## count ## \]\]\n(\d+)", prompt).group(1))
    items = [{"question": "What is a decorator in Python?", "answer": "A decorator is a function that "
              "takes another function as input and extends its behavior.", "difficulty": "medium", "topic": topic},
             {"question": f"Why does {topic} matter?", "answer": "Because.", "difficulty": "easy", "topic": topic}]
    for i in range(max(0, count - 2)):
        w = WORDS[(len(topic) * 7 + i * 5) % len(WORDS):] + WORDS
        items.append({"question": f"{topic}: how do {w[0]} {w[1]} and {w[2]} {w[3]} interact with {w[4]}?",
                      "answer": f"The {w[0]} part of {topic} performs one specific, well defined operation.",
                      "difficulty": ["easy", "medium", "hard"][i % 3], "topic": topic})
    return json.dumps({"examples": items[:count]})


@pytest.fixture
def qa_spec():
    # Verify off: these replies are scripted for the generator (tests/test_verify.py covers verify).
    return synthboot.load_spec(EXAMPLE_SPEC, overrides={"verify.enabled": False})


def test_scripted_run_funnel_and_reasons(qa_spec, tmp_path):
    result = synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm([qa_reply], cycle=True), limit=40)
    assert result.generate.tasks_run == 10 and result.lm_calls_made == 10  # 4 per topic, one call each
    status = run_status(tmp_path / "run")
    f = status.funnel
    assert f.generated == 40
    assert f.rejected["validate"]["answer_too_short"] == 10
    assert f.rejected["dedup"]["duplicate:exact"] == 10  # the seed copies, matched against the seed
    assert f.kept + sum(f.rejected["dedup"].values()) == 30
    assert sum(f.splits.values()) == f.kept
    db = sqlite3.connect(tmp_path / "run" / "synthboot.db")
    matched = db.execute("SELECT c.origin FROM decisions d JOIN candidates c ON c.id = d.matched_id "
                         "WHERE d.stage = 'dedup' AND d.kept = 0 AND d.reason = 'duplicate:exact'").fetchall()
    assert {m[0] for m in matched} == {"seed"}
    # Provenance: model, topic and temperature are stored with every candidate.
    row = db.execute("SELECT model, topic, temperature, call_id FROM candidates WHERE origin = 'lm'").fetchone()
    assert row[0] == "scripted/test" and row[2] == 0.9 and row[3] is not None


def test_identical_rerun_makes_no_call(qa_spec, tmp_path):
    synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm([qa_reply], cycle=True), limit=10)
    again = synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm([]), limit=10)  # any call would fail
    assert again.lm_calls_made == 0 and again.generate.tasks_failed == 0


def test_new_threshold_refilters_without_generating(qa_spec, tmp_path):
    synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm([qa_reply], cycle=True), limit=40)
    before = run_status(tmp_path / "run").funnel
    stricter = qa_spec.model_copy(update={"rules": [
        r.model_copy(update={"value": 80}) if r.name == "answer_too_short" else r for r in qa_spec.rules]})
    result = synthboot.run(stricter, tmp_path / "run", lm=scripted_lm([]), limit=40)
    after = run_status(tmp_path / "run").funnel
    assert result.lm_calls_made == 0
    assert after.generated == before.generated
    assert after.rejected["validate"]["answer_too_short"] > before.rejected["validate"]["answer_too_short"]
    assert after.kept < before.kept


def test_unparseable_reply_is_a_reason_not_a_drop(qa_spec, tmp_path):
    synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm(["Sorry, I cannot do that."], cycle=True), limit=5)
    f = run_status(tmp_path / "run").funnel
    assert f.generated == 5 and f.rejected["validate"]["parse_error"] == 5  # one per call, with its reply


def test_classification_spec_needs_no_code_change(tmp_path):
    spec = synthboot.load_spec(REPO / "examples" / "support-tickets.yaml", overrides={"verify.enabled": False})

    def reply(prompt):
        topic = re.search(r"\[\[ ## topic ## \]\]\n(.*)\n", prompt).group(1)
        labels = ["billing", "bug", "account", "feature_request"]
        rows = []
        for i in range(5):
            w = WORDS[(len(topic) * 3 + i * 6) % len(WORDS):] + WORDS
            rows.append({"ticket": f"My {w[0]} {w[1]} stopped working after the {w[2]} {w[3]} update to {topic}.",
                         "category": labels[i % 4], "urgency": "normal"})
        return json.dumps({"examples": rows})

    synthboot.run(spec, tmp_path / "run", lm=scripted_lm([reply], cycle=True), limit=20)
    train = synthboot.load_split(tmp_path / "run", "train")
    dev = synthboot.load_split(tmp_path / "run", "dev")
    assert train and dev
    assert isinstance(train[0], dspy.Example)
    assert set(train[0].inputs().keys()) == {"ticket"}
    assert set(train[0].labels().keys()) == {"category", "urgency"}


def test_splits_are_seeded_stratified_and_disjoint(qa_spec, tmp_path):
    synthboot.run(qa_spec, tmp_path / "a", lm=scripted_lm([qa_reply], cycle=True), limit=50)
    synthboot.run(qa_spec, tmp_path / "b", lm=scripted_lm([qa_reply], cycle=True), limit=50)
    splits = {name: [e.question for e in synthboot.load_split(tmp_path / "a", name)] for name in ("train", "dev", "test")}
    again = {name: [e.question for e in synthboot.load_split(tmp_path / "b", name)] for name in ("train", "dev", "test")}
    assert {k: sorted(v) for k, v in splits.items()} == {k: sorted(v) for k, v in again.items()}
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["dev"]) & set(splits["test"])


def test_assign_is_stratified_seeded_and_order_free():
    from synthboot.stages.split import assign

    items = [(i, f"example {i}", ["easy", "medium", "hard"][i % 3]) for i in range(300)]
    fractions = {"train": 0.2, "dev": 0.6, "test": 0.2}
    first = assign(items, fractions, seed=42)
    assert first == assign(list(reversed(items)), fractions, seed=42)
    assert first != assign(items, fractions, seed=7)
    for stratum in ("easy", "medium", "hard"):
        members = [cid for cid, _, s in items if s == stratum]
        counts = {name: sum(first[cid] == name for cid in members) for name in fractions}
        assert counts == {"train": 20, "dev": 60, "test": 20}


# -- the real embedded model ---------------------------------------------------------------------

def test_embedded_model_run(tiny_run):
    status = run_status(tiny_run)
    assert status.calls.calls == 2 and status.calls.completion_tokens > 0
    assert status.funnel.generated >= 2
    db = sqlite3.connect(tiny_run / "synthboot.db")
    text, finish = db.execute("SELECT text, finish_reason FROM lm_calls").fetchone()
    assert text.lstrip().startswith("{")  # the grammar constrains the reply to JSON
    assert '"examples"' in text
    parsed = db.execute("SELECT COUNT(*) FROM candidates WHERE origin = 'lm' AND fields IS NOT NULL").fetchone()[0]
    assert parsed >= 1


def test_embedded_model_rerun_makes_no_call(tiny_run, copy_run, tiny_spec_path):
    run_dir = copy_run(tiny_run)
    result = synthboot.run(tiny_spec_path, run_dir)
    assert result.lm_calls_made == 0 and result.lm_calls_cached == 0 and result.generate.tasks_skipped == 2


def test_load_split_from_embedded_run(tiny_run):
    examples = [e for split in ("train", "dev", "test") for e in synthboot.load_split(tiny_run, split)]
    assert len(examples) == run_status(tiny_run).funnel.kept
    for example in examples:
        assert set(example.inputs().keys()) == {"question"}


def test_limit_caps_candidates_even_when_the_model_writes_more(qa_spec, tmp_path):
    many = json.dumps({"examples": [{"question": f"Question number {i} about something?", "answer": "An answer "
                                     "that is long enough.", "difficulty": "easy", "topic": "t"} for i in range(7)]})
    synthboot.run(qa_spec, tmp_path / "run", lm=scripted_lm([many], cycle=True), limit=10)
    assert run_status(tmp_path / "run").funnel.generated == 10  # one asked per topic, 7 written each


def test_seed_window_rotates_by_batch(qa_spec):
    from synthboot.schema import all_seeds
    from synthboot.stages.generate import plan_tasks, seeds_shown

    seeds = all_seeds(qa_spec)
    shown = {seeds_shown(seeds, task, 1) for task in plan_tasks(qa_spec)}
    assert len(shown) == 3 and all(len(json.loads(s)) == 1 for s in shown)
    assert json.loads(seeds_shown(seeds, plan_tasks(qa_spec)[0], None)) == seeds
