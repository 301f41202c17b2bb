"""The store's typed reads, its one freeze, its one call-statistics query and its read-only mode
(issue 12). Scripted LM: no model calls."""

from __future__ import annotations

import json
import sqlite3

import pytest

import synthboot
from synthboot.errors import StoreWriteError, SynthbootError
from synthboot.lm.scripted import scripted_lm
from synthboot.store import CallTotals, SplitRow, Store, StoredDecision
from tests.conftest import tiny_spec

SPEC = tiny_spec(per_topic=3, per_call=3) + "dedup: {semantic: false}\n"


def reply(prompt: str) -> str:
    topic = "io" if "file-io" in prompt else "threads"
    return json.dumps({"examples": [{"question": f"{topic} w{k}a w{k}b w{k}c w{k}d?",
                                     "answer": f"The answer for {topic} number {k}.", "difficulty": "easy"}
                                    for k in range(3)]})


@pytest.fixture
def run_dir(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC)
    synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    return tmp_path / "run"


def raw(run_dir, sql: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "synthboot.db") as conn:
        return conn.execute(sql).fetchall()


def test_typed_reads_match_the_tables(run_dir):
    with Store(run_dir) as store:
        decisions = store.decisions("validate")
        splits = store.splits()
        spec = store.spec()
    assert decisions and all(isinstance(d, StoredDecision) for d in decisions.values())
    assert {(d.candidate_id, d.kept) for d in decisions.values()} == \
        {(cid, bool(kept)) for cid, kept in raw(run_dir, "SELECT candidate_id, kept FROM decisions WHERE stage = 'validate'")}
    assert splits and all(isinstance(r, SplitRow) and not r.frozen for r in splits.values())
    assert {cid: r.split for cid, r in splits.items()} == dict(raw(run_dir, "SELECT candidate_id, split FROM splits"))
    assert spec.name == "tiny-qa"


def test_freeze_one_split_then_all(run_dir):
    with Store(run_dir) as store:
        test = [cid for cid, r in store.splits().items() if r.split == "test"]
        assert store.freeze("test") == len(test) and store.freeze("test") == 0
        assert {cid for cid, r in store.splits().items() if r.frozen} == set(test)
        assert store.freeze() == len(store.splits()) - len(test)
        assert all(r.frozen for r in store.splits().values())


def test_call_totals_is_the_sum_of_the_calls(run_dir):
    rows = raw(run_dir, "SELECT purpose, prompt_tokens, completion_tokens FROM lm_calls")
    with Store(run_dir) as store:
        (total,) = store.call_totals()
        by_purpose = store.call_totals("purpose")
        ids = [i for (i,) in raw(run_dir, "SELECT id FROM lm_calls ORDER BY id LIMIT 1")]
        (first,) = store.call_totals(ids=ids)
        (none,) = store.call_totals(ids=[])
    assert isinstance(total, CallTotals) and total.calls == len(rows) == 2
    assert total.prompt_tokens == sum(r[1] for r in rows) and total.completion_tokens == sum(r[2] for r in rows)
    assert total.unpriced_calls == 0 and total.cost == 0.0  # the scripted model is free
    assert {t.name: t.calls for t in by_purpose} == {"generate": 2}
    assert first.calls == 1 and none.calls == 0 and none.prompt_tokens == 0


def test_read_only_store_reads_and_refuses_writes(run_dir):
    with Store(run_dir, readonly=True) as store:
        assert store.spec().name == "tiny-qa" and store.splits()
        with pytest.raises(StoreWriteError):
            store.set_meta("x", 1)
    with pytest.raises(ValueError):
        Store(run_dir, readonly=True, lock=True)


def test_a_store_without_a_spec_says_so(tmp_path):
    with Store(tmp_path / "empty", create=True) as store:
        assert store.find_spec() is None
        with pytest.raises(SynthbootError, match="no spec yet"):
            store.spec()
