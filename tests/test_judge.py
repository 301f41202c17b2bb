"""LLM-as-judge: real scores and reasoning from the embedded model, zero-call threshold re-runs, failures as reasons."""

from __future__ import annotations

import dataclasses
import json

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.store import Store
from tests.conftest import TINY_SPEC, tiny_spec


def judged(run) -> dict[int, dict]:
    with Store(run) as store:
        return {cid: dataclasses.asdict(d) for cid, d in store.decisions("judge").items()}


def test_judge_scores_on_the_real_model_and_threshold_reruns_make_no_call(tiny_run, copy_run, tmp_path):
    run = copy_run(tiny_run)
    spec_path = tmp_path / "judge.yaml"
    spec_path.write_text(TINY_SPEC + "judge: {enabled: true, threshold: 1, rubric: 'Score 5 only for correct Python facts.'}\n")
    first = synthboot.run(spec_path, run)
    decisions = judged(run)
    [dedup] = [s for s in first.stages if s.stage == "dedup"]
    assert first.lm_calls_made >= 1  # one verdict per example dedup kept (none were judged before)
    scored = [d for d in decisions.values() if d["score"] is not None]
    assert scored and all(1 <= d["score"] <= 5 for d in scored)
    assert all(d["details"]["reasoning"] for d in scored)
    assert all(d["kept"] for d in scored)  # threshold 1 keeps every verdict

    spec_path.write_text(TINY_SPEC + "judge: {enabled: true, threshold: 5, rubric: 'Score 5 only for correct Python facts.'}\n")
    again = synthboot.run(spec_path, run)
    assert again.lm_calls_made == 0  # the verdicts are in the store
    after = judged(run)
    for cid, d in after.items():
        if d["score"] is not None:
            assert d["score"] == decisions[cid]["score"]
            assert bool(d["kept"]) == (d["score"] >= 5)
            assert d["kept"] or d["reason"] == "low_judge_score"


def test_unparseable_verdicts_are_a_reason_and_the_rubric_reaches_the_judge(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(tiny_spec(per_topic=1, per_call=1)
                         + "dedup: {semantic: false}\njudge: {enabled: true, rubric: 'RUBRIC-MARKER'}\n")
    example = {"question": "How do I open a file for appending in Python?", "answer": "open(path, 'a') appends.",
               "difficulty": "easy"}
    prompts: list[str] = []

    def reply(prompt: str) -> str:
        prompts.append(prompt)
        if "RUBRIC-MARKER" in prompt:
            return "I think it is fine"  # no JSON: the judge's verdict cannot be parsed
        question = "Why can two threads race on a shared counter?" if "concurrency" in prompt else example["question"]
        return json.dumps({"examples": [{**example, "question": question}]})

    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    [judge] = [s for s in result.stages if s.stage == "judge"]
    assert judge.rejected == {"judge_error": 2}
    assert any("RUBRIC-MARKER" in p for p in prompts)
    with Store(tmp_path / "run") as store:
        assert store.failure_counts("purpose").get("judge") == 2
