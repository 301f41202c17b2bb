"""Failure-driven growth, with scripted LMs: which examples fail, what the generator is asked, where new
examples go (train/dev only, never near a test item), and the round-over-round record."""

from __future__ import annotations

import json
import re
import sqlite3

from rich.console import Console

import synthboot
from synthboot.optimize.grow import run_grow
from synthboot.lm.scripted import scripted_lm
from synthboot.optimize import OptimizeSettings, run_optimize
from synthboot.cli.render_optimize import print_rounds

SPEC = """
name: tiny-sentiment
task: Short reviews labeled with their sentiment.
fields:
  text: {type: str, description: "A short review", input: true, max_length: 200}
  label: {type: enum, values: [positive, negative], description: "The sentiment"}
seeds:
  - {text: "Great food and friendly staff, we loved every minute of it.", label: positive}
topics: [food, travel]
generate: {per_topic: 6, per_call: 14, concurrency: 1}
dedup: {minhash: false, semantic: false}
split: {train: 0.34, dev: 0.33, test: 0.33, seed: 42, stratify: label}
# The scripted LM answers the generator only: verify (on by default) stays off, as in conftest.
verify: {enabled: false}
"""
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def first_round(topic: str) -> list[dict]:
    """Six distinct reviews per topic, half negative."""
    items = []
    for i in range(6):
        w = WORDS[(len(topic) * 3 + i * 4) % len(WORDS):] + WORDS
        mood = "negative" if i % 2 else "positive"
        items.append({"text": f"{topic} {w[0]} {w[1]} {w[2]} {w[3]} was {'awful' if i % 2 else 'lovely'} {i}",
                      "label": mood})
    return items


def generator_reply(prompt: str) -> str:
    topic = re.search(r"\[\[ ## topic ## \]\]\n(.*)\n", prompt).group(1)
    if "Failure-driven" not in prompt:
        return json.dumps({"examples": first_round(topic)})
    # Two new negatives, plus verbatim copies of every first-round example (test items among them):
    # dedup must keep every copy out.
    new = [{"text": f"{topic} growth {w} {w}x ruined our whole trip {i}", "label": "negative"}
           for i, w in enumerate(["zeta", "theta"])]
    copies = [item for t in ("food", "travel") for item in first_round(t)]
    return json.dumps({"examples": new + copies})


def student_reply(prompt: str) -> str:
    return json.dumps({"label": "positive"})  # always positive: every negative example fails


def test_grow_adds_to_train_and_dev_only_and_reoptimizes(tmp_path):
    run = tmp_path / "run"
    spec = synthboot.parse_spec(SPEC)
    synthboot.run(spec, run, lm=scripted_lm([generator_reply], cycle=True))
    settings = OptimizeSettings(program="text -> label", module="predict", metric="exact_match", adapter="json",
                                optimizer_settings={"max_bootstrapped_demos": 1, "max_labeled_demos": 2})
    first = run_optimize(run, settings, student=scripted_lm([student_reply], cycle=True))
    db = sqlite3.connect(run / "synthboot.db")
    test_before = dict(db.execute("SELECT candidate_id, frozen FROM splits WHERE split = 'test'").fetchall())
    assert test_before and set(test_before.values()) == {1}
    dev_negatives = [json.loads(r[0])["text"] for r in db.execute(
        "SELECT c.fields FROM candidates c JOIN splits s ON s.candidate_id = c.id WHERE s.split = 'dev'")
        if json.loads(r[0])["label"] == "negative"]
    assert dev_negatives and first.scores["dev", "optimized"].mean < 1

    # 14 per ask: the 2 new reviews and the 12 copies the scripted generator writes all count.
    result = run_grow(run, rounds=1, per_round=28, generator=scripted_lm([generator_reply], cycle=True),
                      student=scripted_lm([student_reply], cycle=True))

    (grown,) = result.rounds
    assert grown.failures == len(dev_negatives)
    # The generator was aimed at the failures: their topic, and the failing examples as negative guidance.
    asks = [r[0] for r in db.execute("SELECT request FROM lm_calls WHERE purpose = 'generate' "
                                     "AND request LIKE '%Failure-driven%'")]
    assert asks and all(json.dumps(text)[1:-1] in " ".join(asks) for text in dev_negatives)
    # New examples land in train and dev only; the test split is exactly what it was.
    assert grown.added and set(grown.added) <= {"train", "dev"} and sum(grown.added.values()) == 2 * len(asks)
    assert dict(db.execute("SELECT candidate_id, frozen FROM splits WHERE split = 'test'").fetchall()) == test_before
    # Every verbatim copy (of test items too) was stopped by dedup, none sits in a split.
    copies = db.execute("SELECT COUNT(*) FROM candidates c JOIN decisions d ON d.candidate_id = c.id "
                        "WHERE c.round = 1 AND d.stage = 'dedup' AND d.kept = 0").fetchone()[0]
    assert copies == 12 * len(asks) and grown.test_near_duplicates == 0
    # Round 1 re-optimized on the grown data; the optimizer never saw a test item in either round.
    assert grown.report is not None and grown.report.round == 1
    assert len(grown.report.settings["data"]["train"]) + len(grown.report.settings["data"]["dev"]) == \
        len(first.settings["data"]["train"]) + len(first.settings["data"]["dev"]) + 2 * len(asks)
    handed = {r[0] for r in db.execute("SELECT candidate_id FROM optimize_inputs")}
    assert handed and not handed & set(test_before)
    console = Console(record=True, width=200)
    print_rounds(console, [result.baseline, grown.report], {1: sum(grown.added.values())})
    table = console.export_text()
    assert "growth rounds" in table and len([line for line in table.splitlines() if line.startswith("│")]) == 2


def test_valset_is_dev_and_test_stays_out_of_compile(tmp_path):
    run = tmp_path / "run"
    synthboot.run(synthboot.parse_spec(SPEC), run, lm=scripted_lm([generator_reply], cycle=True))
    settings = OptimizeSettings(program="text -> label", module="predict", metric="exact_match", adapter="json",
                                optimizer="random_search",
                                optimizer_settings={"num_candidate_programs": 1, "max_bootstrapped_demos": 1})
    report = run_optimize(run, settings, student=scripted_lm([student_reply], cycle=True))
    db = sqlite3.connect(run / "synthboot.db")
    split_of = dict(db.execute("SELECT candidate_id, split FROM splits").fetchall())
    roles = {}
    for role, cid in db.execute("SELECT role, candidate_id FROM optimize_inputs WHERE run_id = ?", (report.run_id,)):
        roles.setdefault(role, set()).add(split_of[cid])
    assert roles == {"trainset": {"train"}, "valset": {"dev"}}
    compile_requests = " ".join(r[0] for r in db.execute("SELECT request FROM lm_calls WHERE purpose = "
                                                         "'optimize:compile'"))
    texts = {split: [json.loads(r[0])["text"] for r in db.execute(
        "SELECT c.fields FROM candidates c JOIN splits s ON s.candidate_id = c.id WHERE s.split = ?", (split,))]
        for split in ("dev", "test")}
    assert all(t in compile_requests for t in texts["dev"])  # the optimizer validated on dev...
    assert not any(t in compile_requests for t in texts["test"])  # ...and never saw a test item
