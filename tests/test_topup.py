"""Targeted top-up: more rounds aimed at the gaps until `count` survive, or a reported cap."""

from __future__ import annotations

import itertools
import json
import re

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.status import run_status
from synthboot.store import Store
from tests.conftest import tiny_spec

BASE = tiny_spec(per_topic=1) + "dedup: {semantic: false}\n"


def generator(unique: bool, difficulty: str = "easy"):
    counter = itertools.count()

    def reply(prompt: str) -> str:
        topic = re.search(r"\[\[ ## topic ## \]\]\s*(\S+)", prompt)
        n = re.search(r"\[\[ ## count ## \]\]\s*(\d+)", prompt)
        items = []
        for _ in range(int(n.group(1)) if n else 1):
            k = next(counter) if unique else 0
            diff = "hard" if "difficulty = 'hard'" in prompt else difficulty
            # Word sets that share only "about" and the topic: never near-duplicates of each other.
            items.append({"question": f"w{k}a w{k}b w{k}c w{k}d w{k}e about {topic.group(1) if topic else 'python'}?",
                          "answer": f"A specific answer number {k}.", "difficulty": diff})
        return json.dumps({"examples": items})
    return reply


def test_topup_reaches_the_count_and_a_rerun_makes_no_call(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(BASE + "count: 6\ntopup: {max_rounds: 4}\n")
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([generator(True)], cycle=True))
    assert result.topup.reached and result.topup.kept >= 6 and result.topup.rounds >= 1
    with Store(tmp_path / "run") as store:
        keys = store.task_keys("gen:topup%")
    assert keys and all(k.startswith("gen:topup") for k in keys)
    assert sum(run_status(tmp_path / "run").funnel.splits.values()) >= 6
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([], cycle=False))
    assert again.lm_calls_made == 0 and again.topup.kept == result.topup.kept


def test_topup_stops_at_its_cap_and_reports_what_is_short(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(BASE + "count: 5\ntopup: {max_rounds: 2}\n")
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([generator(False)], cycle=True))
    t = result.topup
    assert not t.reached and t.stopped_by == "max_rounds" and t.rounds == 2
    assert t.kept == 1  # every batch repeats it (the two topics' versions are MinHash near-duplicates)
    assert sum(t.short.values()) >= 3
    status = run_status(tmp_path / "run")
    assert status.topup["stopped_by"] == "max_rounds"
    assert status.dedup_by_layer["exact"] >= 3  # every copy was removed, and counted per layer


def test_topup_aims_batches_at_the_short_stratum_and_honours_the_call_cap(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(BASE.replace("per_call: 2", "per_call: 3")
                         + "count: 2\ntopup: {stratify: difficulty, per_stratum: {hard: 2}, max_calls: 1}\n")
    prompts: list[str] = []
    reply = generator(True)
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run",
                           lm=scripted_lm([lambda p: (prompts.append(p), reply(p))[1]], cycle=True))
    topup_prompts = [p for p in prompts if "short of examples with difficulty = 'hard'" in p]
    assert len(topup_prompts) == 1  # max_calls: 1
    assert result.topup.calls == 1
    assert result.topup.reached  # the aimed batch asked for ceil(2 * 1.5) = 3 hard examples
