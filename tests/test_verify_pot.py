"""`verify.module: pot`: the verifier writes an arithmetic program, synthboot computes the number.

A scripted LM plays the verifier with exact programs (right ones, a wrong one, a refused one); one
test runs the real embedded model on two candidates.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.store import Store

from .test_verify import MATH_SPEC as VERIFY_MATH_SPEC, run_generating, verify_decisions

MATH_SPEC = VERIFY_MATH_SPEC + "verify: {module: pot}\n"  # the verify tests' spec, programs on

# question -> (generated answer, the program the verifier writes)
PLANTED = {
    "Ana buys 12 pencils and gives away 5. How many pencils are left?":
        (7, "bought = 12\nanswer = bought - 5"),                           # right
    "A train travels 60 miles per hour for 3 hours. How far does it go?":
        (180, "answer = 60 * 3"),                                          # right
    "Mia reads 15 pages a day. How many days does she need for a 90-page book?":
        (6, "```python\npages = 90\nanswer = pages / 15\n```"),           # right, 6.0 from / is 6
    "Sam saves 15 dollars a week for 6 weeks. How much does he save?":
        (91, "weekly = 15\nanswer = weekly * 6"),                          # wrong by one
    "A farmer plants 8 rows of 11 trees. How many trees does he plant?":
        (100, "answer = 8 * 11"),                                          # another question's answer
    "Lena reads 25 pages a day. How many pages does she read in 4 days?":
        (100, "import os\nanswer = 25 * 4"),                               # right, but the program is refused
}


def pot_lm(requests: list[str]):
    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a} for q, (a, _) in PLANTED.items()]})
        question = next(q for q in PLANTED if q in prompt)
        requests.append(prompt)
        return json.dumps({"program": PLANTED[question][1]})
    return scripted_lm([reply], cycle=True)


def test_planted_wrong_integers_are_rejected_and_programs_stored(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC)
    requests: list[str] = []
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=pot_lm(requests))
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.decided == 6 and verify.kept == 3
    assert verify.rejected == Counter({"inconsistent:answer": 3})
    assert len(requests) == 6  # one program per candidate
    decisions = verify_decisions(tmp_path / "run")
    expected = {"Ana": (True, 7), "A train": (True, 180), "Mia": (True, 6), "Sam": (False, 90),
                "A farmer": (False, 88), "Lena": (False, None)}
    for question, (generated, program) in PLANTED.items():
        kept, computed = next(v for k, v in expected.items() if question.startswith(k))
        d = decisions[question]
        found = d["details"]["lm"]["fields"]["answer"]
        assert bool(d["kept"]) == kept and (kept or d["reason"] == "inconsistent:answer")
        assert found["generated"] == generated and found["predicted"] == computed
        [stored] = found["programs"]
        assert stored["program"] == program.removeprefix("```python\n").removesuffix("\n```")
        assert stored["value"] == computed
    lena = decisions["Lena reads 25 pages a day. How many pages does she read in 4 days?"]
    assert "Import statements are not allowed" in lena["details"]["lm"]["fields"]["answer"]["programs"][0]["error"]

    # The verifier was asked for a program, not for the answer.
    assert all("`program`" in r and "`answer`" not in r for r in requests)

    # Again: every verdict is in the store.
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0


def test_pot_self_consistency_needs_a_majority_of_programs(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC.replace("verify: {module: pot}", "verify: {module: pot, self_consistency: 3}"))
    seen: Counter = Counter()

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a} for q, (a, _) in PLANTED.items()]})
        question = next(q for q in PLANTED if q in prompt)
        seen[question] += 1
        # Ana: programs computing 7, 8, 8 (a majority against the generated 7); the train: 180, 181, 180.
        if question.startswith("Ana"):
            return json.dumps({"program": "answer = 12 - 5" if seen[question] == 1 else "answer = 12 - 4"})
        if question.startswith("A train"):
            return json.dumps({"program": "answer = 60 * 3" if seen[question] != 2 else "answer = 60 * 3 + 1"})
        return json.dumps({"program": PLANTED[question][1]})

    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    assert all(n == 3 for n in seen.values()) and len(seen) == 6  # three distinct calls per candidate
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.kept == 2  # the train (2 of 3) and Mia (3 of 3)
    decisions = verify_decisions(tmp_path / "run")
    ana = decisions["Ana buys 12 pencils and gives away 5. How many pencils are left?"]
    found = ana["details"]["lm"]["fields"]["answer"]
    assert not ana["kept"] and found["votes"] == "1/3" and found["predicted"] == [7, 8, 8]
    assert [p["program"] for p in found["programs"]] == ["answer = 12 - 5", "answer = 12 - 4", "answer = 12 - 4"]

    # `min_agreeing: 1`: one program of three reaching the stated answer is enough. Decided again
    # from the stored programs, no call: Ana (7 of 7, 8, 8) is kept now; the planted wrong ones
    # (no program reaches 91 or 100) and the refused program stay rejected.
    spec_path.write_text(MATH_SPEC.replace("verify: {module: pot}",
                                           "verify: {module: pot, self_consistency: 3, min_agreeing: 1}"))
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0
    [verify] = [s for s in again.stages if s.stage == "verify"]
    assert verify.decided == 6 and verify.kept == 3
    kept = {" ".join(q.split()[:2]) for q, d in verify_decisions(tmp_path / "run").items() if d["kept"]}
    assert kept == {"Ana buys", "A train", "Mia reads"}


def test_min_agreeing_cannot_exceed_the_samples():
    from synthboot.errors import SpecError
    from synthboot.loader import parse_spec

    with pytest.raises(SpecError, match="min_agreeing"):
        parse_spec(MATH_SPEC.replace("verify: {module: pot}", "verify: {module: pot, min_agreeing: 2}"))


def test_pot_with_a_text_field_predicts_the_text_and_computes_the_number(tmp_path):
    """Only int/float fields get a program; a checked text field is predicted as with `predict`."""
    spec = MATH_SPEC.replace(
        '  answer: {type: int, description: "The integer answer"}',
        '  unit: {type: str, description: "The unit of the answer"}\n'
        '  answer: {type: int, description: "The integer answer"}').replace(
        "answer: 7}", "unit: apples, answer: 7}").replace("answer: 30}", "unit: eggs, answer: 30}")
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(spec)
    kinds: Counter = Counter()

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": "Ana buys 12 pencils and gives away 5. How many "
                                                         "pencils are left?", "unit": "pencils", "answer": 7}]})
        if "`program`" in prompt:  # the user message ends by naming the fields to reply with
            kinds["program"] += 1
            return json.dumps({"program": "answer = 12 - 5"})
        kinds["predict"] += 1
        return json.dumps({"unit": "pencils"})

    engine_lm = scripted_lm([reply], cycle=True)
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=engine_lm)
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.kept == 1 and kinds == Counter({"program": 1, "predict": 1})
    [d] = verify_decisions(tmp_path / "run").values()
    fields = d["details"]["lm"]["fields"]
    assert fields["unit"]["predicted"] == "pencils" and "programs" not in fields["unit"]
    assert fields["answer"]["predicted"] == 7 and fields["answer"]["programs"][0]["program"] == "answer = 12 - 5"


def test_pot_on_the_embedded_model(tmp_path):
    """The real verifier (SmolLM2 under a JSON grammar) writes a program for two candidates; each is stored."""
    two = {q: a for q, (a, _) in list(PLANTED.items())[:2]}
    verify, spec_path = run_generating(tmp_path, MATH_SPEC.replace("per_topic: 6, per_call: 6", "per_topic: 2, per_call: 2")
                                       .replace("verify: {module: pot}", "verify: {module: pot, lm: local, max_tokens: 96}"), two)
    assert verify.decided == 2
    with Store(tmp_path / "run") as store:
        assert {t.name: t.calls for t in store.call_totals("purpose")}["verify"] == 2
    for question, d in verify_decisions(tmp_path / "run").items():
        found = d["details"]["lm"]["fields"]["answer"]
        [stored] = found["programs"]
        assert isinstance(stored["program"], str) and stored["program"]
        # Whatever the small model wrote, the verdict is the evaluator's number against the generated one.
        assert found["predicted"] == stored["value"]
        assert (stored["value"] is None) == ("error" in stored)
        assert bool(d["kept"]) == (stored["value"] == two[question])
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0
