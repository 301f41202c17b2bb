"""The verify stage: outputs re-predicted from inputs, disagreements rejected with both values kept.

A scripted LM makes the exact cases exact (planted wrong labels and answers); one test runs the
verifier on the real embedded model.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import pytest
from rich.console import Console

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.errors import SpecError
from synthboot.cli.render import print_status
from synthboot.loader import parse_spec
from synthboot.status import run_status
from synthboot.store import Store

MATH_SPEC = """
name: math
task: Grade-school math word problems, each with its integer answer.
fields:
  question: {type: str, description: "A word problem", input: true}
  answer: {type: int, description: "The integer answer"}
seeds:
  - {question: "Tom has 3 apples and buys 4 more. How many apples does he have?", answer: 7}
  - {question: "A box holds 6 eggs. How many eggs are in 5 boxes?", answer: 30}
topics: [shopping]
generate: {per_topic: 6, per_call: 6}
dedup: {semantic: false}
"""

# Question -> its true answer. The generator plants wrong answers; the verifier knows the truth.
TRUTH = {
    "Ana buys 12 pencils and gives away 5. How many pencils are left?": 7,
    "A train travels 60 miles per hour for 3 hours. How far does it go?": 180,
    "Each of 4 children gets 9 stickers. How many stickers in total?": 36,
    "Sam saves 15 dollars a week for 6 weeks. How much does he save?": 90,
    "A farmer plants 8 rows of 11 trees. How many trees does he plant?": 88,
    "Lena reads 25 pages a day. How many pages does she read in 4 days?": 100,
}
PLANTED = {  # question -> generated answer
    "Ana buys 12 pencils and gives away 5. How many pencils are left?": 7,          # right
    "A train travels 60 miles per hour for 3 hours. How far does it go?": 180,       # right
    "Each of 4 children gets 9 stickers. How many stickers in total?": 36,           # right
    "Sam saves 15 dollars a week for 6 weeks. How much does he save?": 91,           # wrong by one
    "A farmer plants 8 rows of 11 trees. How many trees does he plant?": 130,        # nonsense
    "Lena reads 25 pages a day. How many pages does she read in 4 days?": 88,        # another question's answer
}


def math_lm(verifier_calls: list[str] | None = None):
    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a} for q, a in PLANTED.items()]})
        question = next(q for q in TRUTH if q in prompt)
        if verifier_calls is not None:
            verifier_calls.append(question)
        return json.dumps({"answer": TRUTH[question]})
    return scripted_lm([reply], cycle=True)


def verify_decisions(run, key: str = "question") -> dict[str, dict]:
    with Store(run) as store:
        by_id = {c.id: c for c in store.candidates(origin="lm")}
        return {by_id[cid].fields[key]: {"kept": d.kept, "reason": d.reason, "details": d.details or {}}
                for cid, d in store.decisions("verify").items()}


def test_wrong_integer_answers_are_rejected_with_both_values_and_right_ones_kept(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC)
    calls: list[str] = []
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=math_lm(calls))
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.decided == 6 and verify.kept == 3 and verify.rejected == Counter({"inconsistent:answer": 3})
    assert sorted(calls) == sorted(TRUTH)  # one verifier call per candidate
    decisions = verify_decisions(tmp_path / "run")
    for question, generated in PLANTED.items():
        d = decisions[question]
        found = d["details"]["lm"]["fields"]["answer"]
        assert found["generated"] == generated and found["predicted"] == TRUTH[question]
        assert bool(d["kept"]) == (generated == TRUTH[question])
        assert d["kept"] or d["reason"] == "inconsistent:answer"
    status = run_status(tmp_path / "run")
    assert status.funnel.verified == 3 and status.funnel.kept == 3
    assert status.funnel.rejected["verify"] == Counter({"inconsistent:answer": 3})
    [agreement] = status.verify_agreement
    assert (agreement.field, agreement.agreed, agreement.compared, agreement.match) == ("answer", 3, 6, "exact")
    console = Console(record=True, width=200)
    print_status(console, status)
    printed = console.export_text()
    assert "verify agreement: answer 3/6 (50%, exact)" in printed and "inconsistent:answer" in printed
    from synthboot.report import build_html, collect

    html = build_html(collect(tmp_path / "run"))
    assert 'id="verify"' in html and html.count("inconsistent:answer") >= 3

    # The same run again: every verdict is in the store.
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0
    assert [s.decided for s in again.stages if s.stage == "verify"] == [0]

    # A looser tolerance decides again from the stored predictions: 91 for 90 now passes.
    spec_path.write_text(MATH_SPEC + "verify: {per_field: {answer: {match: number, tolerance: 0.05}}}\n")
    loose = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert loose.lm_calls_made == 0 and loose.generate.tasks_run == 0
    [verify] = [s for s in loose.stages if s.stage == "verify"]
    assert verify.decided == 6 and verify.kept == 4
    assert verify_decisions(tmp_path / "run")["Sam saves 15 dollars a week for 6 weeks. How much does he save?"]["kept"]


INTENT_SPEC = """
name: intents
task: Banking chatbot user messages labelled with their intent.
fields:
  text: {type: str, description: "What the user wrote", input: true}
  intent: {type: enum, values: [balance, transfer, lost_card], description: "The user's intent"}
seeds:
  - {text: "How much money is in my checking account?", intent: balance}
  - {text: "Send 50 dollars to my brother's account", intent: transfer}
  - {text: "I can't find my debit card anywhere", intent: lost_card}
topics: [banking]
generate: {per_topic: 6, per_call: 6}
dedup: {semantic: false}
"""
INTENTS = {  # text -> (generated label, true label)
    "What's my current savings balance?": ("balance", "balance"),
    "Please move 200 euros into my savings": ("transfer", "transfer"),
    "My credit card was stolen on the bus": ("lost_card", "lost_card"),
    "Tell me how much I have left this month": ("transfer", "balance"),       # swapped
    "Wire the rent money to my landlord today": ("lost_card", "transfer"),    # swapped
    "Where did I leave my card, I need to block it": ("balance", "lost_card"),  # swapped
}


def intent_lm():
    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"text": t, "intent": g} for t, (g, _) in INTENTS.items()]})
        return json.dumps({"intent": next(true for t, (_, true) in INTENTS.items() if t in prompt)})
    return scripted_lm([reply], cycle=True)


def test_planted_wrong_labels_are_rejected_by_the_verifier(tmp_path):
    spec_path = tmp_path / "intents.yaml"
    # The offline vote is off here: this test is about the LM verifier alone.
    spec_path.write_text(INTENT_SPEC + "verify: {label_vote: false}\n")
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=intent_lm())
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.rejected == Counter({"inconsistent:intent": 3}) and verify.kept == 3
    decisions = verify_decisions(tmp_path / "run", key="text")
    for text, (generated, true) in INTENTS.items():
        found = decisions[text]["details"]["lm"]["fields"]["intent"]
        assert (found["generated"], found["predicted"]) == (generated, true)
        assert bool(decisions[text]["kept"]) == (generated == true)


def test_self_consistency_keeps_only_majority_agreement_and_stores_each_sample(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC + "verify: {self_consistency: 3}\n")
    seen: Counter = Counter()

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a} for q, a in PLANTED.items()]})
        question = next(q for q in TRUTH if q in prompt)
        seen[question] += 1
        # Ana's problem: the samples say 7, 8, 8 (a majority against the generated 7);
        # every other problem: right, wrong, right.
        if question.startswith("Ana"):
            return json.dumps({"answer": 7 if seen[question] == 1 else 8})
        return json.dumps({"answer": TRUTH[question] if seen[question] != 2 else TRUTH[question] + 1})

    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    assert all(n == 3 for n in seen.values()) and len(seen) == 6  # three distinct calls per candidate
    with Store(tmp_path / "run") as store:
        assert {t.name: t.calls for t in store.call_totals("purpose")}["verify"] == 18
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.kept == 2  # the train and the stickers: two of three samples agree
    ana = verify_decisions(tmp_path / "run")["Ana buys 12 pencils and gives away 5. How many pencils are left?"]
    assert not ana["kept"] and ana["details"]["lm"]["fields"]["answer"]["votes"] == "1/3"
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0


def test_verify_disabled_passes_everything_without_a_call(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC + "verify: {enabled: false}\n")
    calls: list[str] = []
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=math_lm(calls))
    assert calls == []
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.kept == 6 and run_status(tmp_path / "run").funnel.kept == 6


def test_an_unparseable_prediction_is_a_reason(tmp_path):
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(MATH_SPEC)

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a} for q, a in PLANTED.items()]})
        return "I would rather not say."

    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert verify.rejected == Counter({"verify_error": 6})


def test_free_text_answers_compare_by_embedding_similarity(tmp_path):
    """Python QA: the answer is free text; an answer to another question is rejected, a paraphrase kept."""
    spec = """
name: qa
task: Python quiz questions with short factual answers.
fields:
  question: {type: str, input: true}
  answer: {type: str}
  difficulty: {type: enum, values: [easy, medium, hard]}
seeds:
  - {question: "What is a list in Python?", answer: "A mutable ordered sequence of items.", difficulty: easy}
topics: [basics]
generate: {per_topic: 3, per_call: 3}
dedup: {semantic: false}
"""
    rows = [  # question, generated answer, the verifier's answer
        ("How do you open a file for reading in Python?", "Call open(path, 'r') to get a file object for reading.",
         "Use the built-in open function with mode 'r', which returns a readable file object."),
        ("What does the len function return?", "It returns the number of items in a container.",
         "len returns how many elements a sequence or collection holds."),
        ("What keyword defines a function in Python?", "Tuples are immutable, lists are mutable.",
         "The def keyword defines a function."),
    ]

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            return json.dumps({"examples": [{"question": q, "answer": a, "difficulty": "easy"} for q, a, _ in rows]})
        return json.dumps({"answer": next(v for q, _, v in rows if q in prompt)})

    spec_path = tmp_path / "qa.yaml"
    spec_path.write_text(spec)
    synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    decisions = verify_decisions(tmp_path / "run")
    kept = {q: bool(decisions[q]["kept"]) for q, _, _ in rows}
    assert kept == {rows[0][0]: True, rows[1][0]: True, rows[2][0]: False}
    wrong = decisions[rows[2][0]]
    assert wrong["reason"] == "inconsistent:answer"
    assert set(wrong["details"]["lm"]["fields"]) == {"answer"}  # difficulty is the diversity attribute: not checked
    assert wrong["details"]["lm"]["fields"]["answer"]["match"] == "embedding"


def run_generating(tmp_path, spec_text: str, items: dict):
    """Run `spec_text` with a scripted generator writing `items` (question -> answer) on every call.

    Returns the verify stage's result and the spec's path (for a second run on the same store).
    """
    spec_path = tmp_path / "math.yaml"
    spec_path.write_text(spec_text)

    def reply(prompt: str) -> str:
        return json.dumps({"examples": [{"question": q, "answer": a} for q, a in items.items()]})

    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    [verify] = [s for s in result.stages if s.stage == "verify"]
    return verify, spec_path


def test_verify_on_the_embedded_model(tmp_path):
    """The real verifier (SmolLM2 under a JSON grammar) on two candidates: two calls, both values stored."""
    two = dict(itertools.islice(PLANTED.items(), 3, 5))
    verify, spec_path = run_generating(tmp_path, MATH_SPEC.replace("per_topic: 6, per_call: 6", "per_topic: 2, per_call: 2")
                                       + "verify: {lm: local, max_tokens: 64}\n", two)
    assert verify.decided == 2
    with Store(tmp_path / "run") as store:
        by_model = {t.name: t.calls for t in store.call_totals("model")}
        by_purpose = {t.name: t.calls for t in store.call_totals("purpose")}
    assert by_purpose["verify"] == 2 and by_model["local/smollm2"] == 2  # the generator is the scripted LM
    for question, d in verify_decisions(tmp_path / "run").items():
        found = d["details"]["lm"]["fields"]["answer"]
        assert found["generated"] == two[question]
        assert isinstance(found["predicted"], int)  # the grammar holds the model to the int schema
        assert bool(d["kept"]) == (found["predicted"] == two[question])
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0


def test_topup_rounds_count_only_verified_examples(tmp_path):
    """With `count`, examples verify rejects are made up by more rounds, and each round is verified."""
    problems = [(f"A shop sells {n} boxes of {n + 3} pens each. How many pens in total?", n * (n + 3))
                for n in range(2, 14)]
    served = itertools.count()

    def reply(prompt: str) -> str:
        if "[[ ## topic ## ]]" in prompt:
            count = int(re.search(r"\[\[ ## count ## \]\]\s*(\d+)", prompt).group(1))
            items = []
            for _ in range(count):
                i = next(served)
                question, answer = problems[i % len(problems)]
                items.append({"question": question, "answer": answer + (1 if i % 2 else 0)})  # every other one wrong
            return json.dumps({"examples": items})
        return json.dumps({"answer": next(a for q, a in problems if q in prompt)})

    spec_path = tmp_path / "math.yaml"
    # Exact dedup only: these templated problems share most of their words.
    spec_path.write_text(MATH_SPEC.replace("per_topic: 6, per_call: 6", "per_topic: 4, per_call: 4")
                         .replace("dedup: {semantic: false}", "dedup: {semantic: false, minhash: false}")
                         + "count: 4\ntopup: {max_rounds: 3}\n")
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([reply], cycle=True))
    assert result.topup is not None and result.topup.reached and result.topup.rounds >= 1
    status = run_status(tmp_path / "run")
    assert status.funnel.kept >= 4 and status.funnel.rejected["verify"]["inconsistent:answer"] >= 2
    with Store(tmp_path / "run") as store:
        topup_ids = {c.id for c in store.candidates(origin="lm") if c.round >= 1}
        assert topup_ids and topup_ids <= set(store.decisions("verify"))  # top-up rounds were verified too


def test_verify_fields_must_be_outputs():
    with pytest.raises(SpecError, match="not an output field") as err:
        parse_spec(MATH_SPEC + "verify: {fields: [question]}\n")
    assert err.value.field == "verify.fields[0]"
