"""The optimize loop: the protocol on the real embedded model, and its parts on their own."""

from __future__ import annotations

import json
import sqlite3
from typing import Literal

import dspy
import pytest

import synthboot
from synthboot.cli import main
from synthboot.errors import SynthbootError
from synthboot.importing import import_examples, read_examples
from synthboot.optimize.metrics import bootstrap_ci, make_metric
from synthboot.optimize import OptimizeSettings, freeze_test, load_optimized, run_optimize
from synthboot.optimize.programs import load_program, make_optimizer, parse_settings
from synthboot.schema import TaskSchema
from synthboot.status import run_status
from synthboot.store import Store

from .conftest import DATA, TINY_SPEC

GSM8K_TEST = DATA / "gsm8k_test_40.jsonl"


class TinyQA(dspy.Module):
    """A user's program, named as `tests.test_optimize:TinyQA`."""

    def __init__(self):
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question):
        return self.answer(question=question)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _gsm8k_slice(tmp_path, n=2):
    """Real, human-written math problems with their final answers: the real test set."""
    rows = []
    for line in GSM8K_TEST.read_text().splitlines():
        row = json.loads(line)
        if len(row["question"]) <= 200:  # the tiny spec's bound on questions
            rows.append({"question": row["question"], "answer": row["answer"].rsplit("####", 1)[1].strip()})
    return _write_jsonl(tmp_path / "real_test.jsonl", rows[:n])


@pytest.mark.slow
def test_protocol_on_the_embedded_model(tiny_run, copy_run, tmp_path):
    run = copy_run(tiny_run)
    spec = synthboot.parse_spec(TINY_SPEC)
    # Hand-written rows make sure train and dev are never empty, whatever the tiny model kept.
    with Store(run) as store:
        import_examples(store, spec, _write_jsonl(tmp_path / "train.jsonl", [
            {"question": "How do you open a file for reading in Python?", "answer": "open(path, 'r')"}]), "train")
        import_examples(store, spec, _write_jsonl(tmp_path / "dev.jsonl", [
            {"question": "Which keyword starts a function definition in Python?", "answer": "def"}]), "dev")
    settings = OptimizeSettings(program="question -> answer", module="predict", optimizer="bootstrap",
                                optimizer_settings={"max_bootstrapped_demos": 1, "max_labeled_demos": 1},
                                metric="token_f1", num_threads=2, test_file=str(_gsm8k_slice(tmp_path)))
    report = run_optimize(run, settings)

    db = sqlite3.connect(run / "synthboot.db")
    test_ids = {r[0] for r in db.execute("SELECT candidate_id FROM splits WHERE split = 'test'")}
    assert test_ids and all(r[0] == 1 for r in db.execute("SELECT frozen FROM splits WHERE split = 'test'"))
    human_test = {r[0] for r in db.execute("SELECT c.id FROM candidates c JOIN splits s ON s.candidate_id = c.id "
                                           "WHERE s.split = 'test' AND c.origin = 'human'")}
    assert len(human_test) == 2
    # The optimizer was handed train (and no valset: BootstrapFewShot takes none), never a test item.
    handed = {r[0] for r in db.execute("SELECT candidate_id FROM optimize_inputs WHERE run_id = ?", (report.run_id,))}
    assert handed and not handed & test_ids
    # No LM request before the final phase carried a test item's input; the final phase carried all of them.
    questions = [json.loads(r[0])["question"] for r in
                 db.execute("SELECT fields FROM candidates WHERE id IN (%s)" % ",".join(map(str, test_ids)))]
    before = " ".join(r[0] for r in db.execute("SELECT request FROM lm_calls WHERE purpose IN "
                                               "('optimize:baseline', 'optimize:compile', 'optimize:optimized')"))
    final = " ".join(r[0] for r in db.execute("SELECT request FROM lm_calls WHERE purpose = 'optimize:test'"))
    assert before and final
    for question in questions:
        needle = json.dumps(question)[1:-1][:60]
        assert needle not in before and needle in final
    # Scores with intervals, and one stored prediction per scored example.
    for split in ("dev", "test", "real_test"):
        if (split, "baseline") not in report.scores:
            assert split == "test"  # the tiny run may have kept no synthetic test item
            continue
        s = report.scores[split, "optimized"]
        assert s.low <= s.mean <= s.high and (split, "gain") in report.scores
        n = db.execute("SELECT COUNT(*) FROM optimize_predictions WHERE run_id = ? AND split = ? AND "
                       "program = 'optimized'", (report.run_id, split)).fetchone()[0]
        assert n == s.n
    assert report.scores["real_test", "optimized"].n == 2
    assert {p.phase for p in report.phases} == {"baseline", "compile", "optimized", "test"}
    assert sum(p.calls_made for p in report.phases) > 0
    # The saved program loads back with its demos.
    program = load_optimized(run)
    assert isinstance(program, dspy.Predict)

    # A re-run is answered from the store: zero LM calls, the same scores.
    calls = db.execute("SELECT COUNT(*) FROM lm_calls").fetchone()[0]
    again = run_optimize(run, settings)
    assert again.run_id == report.run_id
    assert all(p.calls_made == 0 for p in again.phases)
    assert db.execute("SELECT COUNT(*) FROM lm_calls").fetchone()[0] == calls
    assert again.scores == report.scores
    assert run_status(run).optimization[-1].scores == report.scores


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, knobs", [
    ("mipro", {"num_candidates": 2, "num_trials": 2, "max_bootstrapped_demos": 1, "max_labeled_demos": 1}),
    ("gepa", {"max_metric_calls": 12}),
])
def test_mipro_and_gepa_run_on_the_embedded_model(tiny_run, copy_run, tmp_path, optimizer, knobs):
    """DSPy's MIPROv2 and GEPA compile for real here: the embedded model as student and as their
    prompt/reflection model, every call through the run store, and a re-run makes none."""
    run = copy_run(tiny_run)
    spec = synthboot.parse_spec(TINY_SPEC)
    rows = [{"question": "How do you open a file for reading in Python?", "answer": "open(path, 'r')"},
            {"question": "Which keyword starts a function definition in Python?", "answer": "def"},
            {"question": "What does len() return for a list?", "answer": "The number of items in it."}]
    with Store(run) as store:
        import_examples(store, spec, _write_jsonl(tmp_path / "train.jsonl", rows[:2]), "train")
        import_examples(store, spec, _write_jsonl(tmp_path / "dev.jsonl", rows[2:]), "dev")
    settings = OptimizeSettings(program="question -> answer", module="predict", optimizer=optimizer,
                                optimizer_settings=knobs, metric="token_f1", num_threads=1)
    report = run_optimize(run, settings)
    compile_phase = next(p for p in report.phases if p.phase == "compile")
    assert compile_phase.calls > 0
    assert ("dev", "optimized") in report.scores
    assert isinstance(load_optimized(run), dspy.Predict)
    again = run_optimize(run, settings)
    assert all(p.calls_made == 0 for p in again.phases) and again.scores == report.scores


def test_cli_user_error_exits_2(tiny_run, copy_run, tmp_path, capsys):
    run = copy_run(tiny_run)
    assert main(["optimize", str(run), "--program", "question -> nonexistent_output, answer", "--module", "predict",
                 "--metric", "no.such.module:fn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_signature_takes_the_schema_types():
    spec = synthboot.parse_spec(TINY_SPEC)
    schema = TaskSchema.from_spec(spec)
    program = load_program("question -> difficulty", schema, "predict")
    assert program.module.signature.output_fields["difficulty"].annotation == Literal["easy", "medium", "hard"]
    assert program.outputs == ["difficulty"] and program.inputs == ["question"]
    assert isinstance(load_program(None, schema, "cot").module, dspy.ChainOfThought)
    with pytest.raises(SynthbootError, match="not a field of the task"):
        load_program("prompt -> answer", schema)
    custom = load_program("tests.test_optimize:TinyQA", schema)
    assert isinstance(custom.module, TinyQA) and custom.outputs == ["answer"]


def test_metrics_score_the_compared_fields():
    gold = dspy.Example(question="q", answer="The Eiffel Tower", difficulty="easy").with_inputs("question")
    em = make_metric("exact_match", fields=["answer"], inputs=["question"])
    f1 = make_metric("token_f1", fields=["answer", "difficulty"], inputs=["question"], threshold=0.7)
    assert em(gold, dspy.Prediction(answer="the eiffel tower")) == 1.0
    assert em(gold, dspy.Prediction(answer="Eiffel")) == 0.0
    assert f1(gold, dspy.Prediction(answer="Eiffel", difficulty="easy")) == pytest.approx((2 / 3 + 1) / 2)
    # Under a trace (bootstrapping demos) a metric answers pass/fail at its threshold.
    assert f1(gold, dspy.Prediction(answer="Eiffel", difficulty="hard"), trace=[]) is False
    emb = make_metric("embedding", fields=["answer"], inputs=["question"])
    close, far = emb(gold, dspy.Prediction(answer="the Eiffel tower in Paris")), emb(gold, dspy.Prediction(
        answer="a recipe for pancakes"))
    assert 0 <= far < close <= 1.0001
    with pytest.raises(SynthbootError, match="unknown metric"):
        make_metric("bleu", fields=["answer"], inputs=["question"])


def test_bootstrap_interval():
    mean, low, high = bootstrap_ci([1, 0, 1, 1, 0, 1, 0, 1])
    assert low < mean == 0.625 < high
    assert bootstrap_ci([0.5] * 4) == (0.5, 0.5, 0.5)
    assert bootstrap_ci([1, 0, 1]) == bootstrap_ci([1, 0, 1])  # seeded


def test_optimizer_settings_pass_through():
    metric = make_metric("exact_match", fields=["answer"], inputs=["question"])
    opt, compile_kwargs = make_optimizer("bootstrap", metric, parse_settings(["max_bootstrapped_demos=2"]),
                                         num_threads=1, reflection_lm=None)
    assert isinstance(opt, dspy.BootstrapFewShot) and opt.max_bootstrapped_demos == 2 and compile_kwargs == {}
    with dspy.context(lm=dspy.LM("openai/none", api_key="x")):
        mipro, compile_kwargs = make_optimizer("mipro", metric, parse_settings(["num_trials=3"], auto="light"),
                                               num_threads=1, reflection_lm=None)
    assert isinstance(mipro, dspy.MIPROv2) and mipro.auto == "light" and compile_kwargs == {"num_trials": 3}
    with pytest.raises(SynthbootError, match="has no setting 'bogus'"):
        make_optimizer("bootstrap", metric, {"bogus": 1}, num_threads=1, reflection_lm=None)
    with pytest.raises(SynthbootError, match="reflection LM"):
        make_optimizer("gepa", metric, {}, num_threads=1, reflection_lm=None)
    with pytest.raises(SynthbootError, match="KEY=VALUE"):
        parse_settings(["oops"])


def test_import_checks_rows_and_freezes_them(tmp_path):
    spec = synthboot.parse_spec(TINY_SPEC)
    schema = TaskSchema.from_spec(spec)
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok?", "answer": "yes"}, {"answer": "no question"}])
    with pytest.raises(SynthbootError, match="line 2: question"):
        read_examples(bad, schema)
    good = _write_jsonl(tmp_path / "good.jsonl", [{"question": "What does len() return?", "answer": "A length",
                                                   "difficulty": "easy"}])
    with Store(tmp_path / "run", create=True) as store:
        store.save_spec(spec.content_hash(), spec.model_dump(mode="json", by_alias=True))
        first = import_examples(store, spec, good, "test")
        again = import_examples(store, spec, good, "test")
        assert (first.added, again.added) == (1, 0)
        splits = store.splits()
        rows = [(c.origin, splits[c.id].split, splits[c.id].frozen) for c in store.candidates(ids=splits)]
        assert rows == [("human", "test", True)]
        with pytest.raises(SynthbootError, match="already imported into another split"):
            import_examples(store, spec, good, "train")
    assert main(["import", str(tmp_path / "run"), str(good), "--as", "test"]) == 0
    assert main(["import", str(tmp_path / "run"), str(bad), "--as", "dev"]) == 2
    assert main(["grow", str(tmp_path / "run")]) == 2  # no optimize run to grow from


def test_frozen_test_rows_leave_the_split_up_to_date(tiny_run, copy_run, tmp_path):
    # Once test is frozen (and a human test row sits outside the filtered pool), an unchanged
    # re-run places nothing again: every placement keeps the row and time it was written with.
    run = copy_run(tiny_run)
    spec = synthboot.parse_spec(TINY_SPEC)
    with Store(run) as store:
        import_examples(store, spec, _gsm8k_slice(tmp_path, n=1), "test")
        freeze_test(store)
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    synthboot.run(spec_path, run)  # places what the import changed, if anything
    db = sqlite3.connect(run / "synthboot.db")
    query = "SELECT candidate_id, split, settings_hash, frozen, assigned_at FROM splits ORDER BY candidate_id"
    before = db.execute(query).fetchall()
    assert any(frozen for *_, frozen, _ in before)
    again = synthboot.run(spec_path, run)
    assert again.lm_calls_made == 0
    assert db.execute(query).fetchall() == before


def test_bootstrapped_demos_never_repeat_dspys_placeholder():
    """A trace whose reasoning is DSPy's "Not supplied ..." filler must not become a demo."""
    import json as _json

    from synthboot.lm.scripted import scripted_lm
    from synthboot.optimize.programs import DSPY_PLACEHOLDER

    def reply(prompt: str) -> str:
        if "2 + 2" in prompt:  # the student copied the filler it saw in a labelled demo
            return _json.dumps({"reasoning": DSPY_PLACEHOLDER + ".", "answer": "4"})
        return _json.dumps({"reasoning": "3 times 3 is 9.", "answer": "9"})

    train = [dspy.Example(question="What is 2 + 2?", answer="4").with_inputs("question"),
             dspy.Example(question="What is 3 x 3?", answer="9").with_inputs("question")]
    metric = make_metric("exact_match", fields=["answer"], inputs=["question"])
    optimizer, _ = make_optimizer("bootstrap", metric, {"max_bootstrapped_demos": 2, "max_labeled_demos": 0},
                                  num_threads=1, reflection_lm=None)
    with dspy.context(lm=scripted_lm([reply], cycle=True), adapter=dspy.JSONAdapter()):
        compiled = optimizer.compile(dspy.ChainOfThought("question -> answer"), trainset=train)
    demos = compiled.predictors()[0].demos
    assert [d["question"] for d in demos] == ["What is 3 x 3?"]
    # Evaluation (no trace) still scores the answer alone.
    assert optimizer.metric(train[0], dspy.Prediction(reasoning=DSPY_PLACEHOLDER, answer="4")) == 1.0
