"""Tokens and cost per call, budgets that stop a run cleanly and resume, estimates, progress."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

import synthboot
from synthboot.cli import main
from synthboot.cost import Budget, call_cost, parse_budget, spent, token_prices
from synthboot.errors import BudgetExhausted, SynthbootError
from synthboot.estimate import estimate_run
from synthboot.lm.scripted import scripted_lm
from synthboot.loader import parse_spec
from synthboot.status import run_status
from synthboot.store import Store

from .conftest import TINY_SPEC
from .support.openai_server import serve

QUESTIONS = [
    "How do you read a file line by line?", "What does the with statement guarantee for open files?",
    "Why does the GIL limit CPU-bound threads?", "When should asyncio be preferred over threads?",
    "How is a binary file opened for appending?", "What does os.path.join do with absolute parts?",
    "Which module offers a process pool?", "What happens when a lock is released twice?",
    "How can a CSV file be parsed into dictionaries?", "What does flush() do on a file object?",
    "How do queues pass data between threads?", "Why are daemon threads killed at exit?",
]


def reply(prompt: str) -> str:
    """A generation batch of distinct questions, or a judge verdict."""
    if "[[ ## rubric ## ]]" in prompt:
        return json.dumps({"reasoning": "Specific and correct.", "quality_score": 4})
    topic = re.search(r"\[\[ ## topic ## \]\]\n(.*)\n", prompt).group(1)
    count = int(re.search(r"\[\[ ## count ## \]\]\n(\d+)", prompt).group(1))
    start = sum(map(ord, topic)) % len(QUESTIONS)
    items = [{"question": QUESTIONS[(start + i) % len(QUESTIONS)] + f" ({topic})",
              "answer": f"A concise and factual answer about {topic}, number {i}.", "difficulty": "medium"}
             for i in range(count)]
    return json.dumps({"examples": items})


def spec(**overrides):
    return parse_spec(TINY_SPEC, overrides={"generate.per_topic": 6, **overrides})


def calls(run) -> list[tuple]:
    return sqlite3.connect(run / "synthboot.db").execute(
        "SELECT purpose, prompt_tokens, completion_tokens, cost FROM lm_calls ORDER BY id").fetchall()


def test_parse_budget():
    assert parse_budget("$2") == Budget(usd=2.0) and parse_budget("0.5 USD") == Budget(usd=0.5)
    assert parse_budget("50k") == Budget(tokens=50_000) and parse_budget("1.5M tokens") == Budget(tokens=1_500_000)
    assert parse_budget("1,000 tokens") == Budget(tokens=1000) and parse_budget("10tok") == Budget(tokens=10)
    for bad in ("100", "two dollars", "$", "-5k"):
        with pytest.raises(SynthbootError, match="cannot read the budget"):
            parse_budget(bad)


def test_prices_from_dspy_price_map():
    assert token_prices("local/smollm2") == (0.0, 0.0) and call_cost("local/smollm2", 1000, 1000) == 0.0
    prompt, completion = token_prices("openai/gpt-4o-mini")
    assert 0 < prompt < completion
    assert call_cost("openai/gpt-4o-mini", 1000, 100) == pytest.approx(1000 * prompt + 100 * completion)
    assert token_prices("openai/no-such-model-here") is None  # unknown is not free


def test_real_run_stores_tokens_and_zero_cost(tiny_run):
    rows = calls(tiny_run)
    assert rows and all(p > 0 and c > 0 and cost == 0.0 for _, p, c, cost in rows)


def test_token_budget_stops_cleanly_and_resumes(tmp_path):
    s, lm = spec(), scripted_lm([reply], cycle=True)
    with pytest.raises(BudgetExhausted, match=r"budget of 1 tokens reached .* 5 of 6 generation tasks"):
        synthboot.run(s, tmp_path / "run", lm=lm, concurrency=1, budget="1 tokens")
    assert len(calls(tmp_path / "run")) == 1
    status = run_status(tmp_path / "run")
    assert status.funnel.generated == 2 and status.funnel.pending == 0  # what was made is decided and split

    result = synthboot.run(s, tmp_path / "run", lm=lm, concurrency=1, budget="1M tokens")
    assert (result.lm_calls_made, result.generate.tasks_skipped) == (5, 1)
    assert len(calls(tmp_path / "run")) == 6
    # A finished run over its budget has nothing left to spend on: it does not complain.
    assert synthboot.run(s, tmp_path / "run", lm=lm, concurrency=1, budget="1 tokens").lm_calls_made == 0


def test_money_budget_prices_each_call(tmp_path):
    lm = scripted_lm([reply], cycle=True, name="openai/gpt-4o-mini")
    with pytest.raises(BudgetExhausted, match=r"budget of \$1e-06 reached"):
        synthboot.run(spec(), tmp_path / "run", lm=lm, concurrency=1, budget="$0.000001")
    ((_, p, c, cost),) = calls(tmp_path / "run")
    assert cost == pytest.approx(call_cost("openai/gpt-4o-mini", p, c)) and cost > 1e-6


def test_money_budget_needs_a_known_price(tmp_path):
    lm = scripted_lm([reply], cycle=True, name="openai/no-such-model-here")
    with pytest.raises(SynthbootError, match="no-such-model-here.*token budget"):
        synthboot.run(spec(), tmp_path / "run", lm=lm, budget="$1")
    assert calls(tmp_path / "run") == []


def test_budget_stops_the_judge_between_verdicts(tmp_path):
    s = spec(**{"generate.per_topic": 2, "judge.enabled": True})
    lm = scripted_lm([reply], cycle=True)
    synthboot.run(s, tmp_path / "measure", lm=lm, concurrency=1)
    generation = sum(p + c for purpose, p, c, _ in calls(tmp_path / "measure") if purpose == "generate")
    judged = sum(1 for purpose, *_ in calls(tmp_path / "measure") if purpose == "judge")
    assert judged >= 2

    # Enough for generation and one verdict: the judge stops after it, the rest stay pending.
    with pytest.raises(BudgetExhausted, match="verdicts left to do"):
        synthboot.run(s, tmp_path / "run", lm=lm, concurrency=1, budget=f"{generation + 1} tokens")
    assert [purpose for purpose, *_ in calls(tmp_path / "run")].count("judge") == 1
    assert run_status(tmp_path / "run").funnel.pending == judged - 1
    result = synthboot.run(s, tmp_path / "run", lm=lm, concurrency=1)
    assert result.lm_calls_made == judged - 1 and run_status(tmp_path / "run").funnel.pending == 0


def test_cli_money_budget_on_a_real_http_server(tiny_spec_path, tmp_path, capsys):
    """The priced path end to end: LiteLLM over HTTP, DSPy's price for gpt-4o-mini, the CLI's message."""
    run = tmp_path / "run"
    with serve() as url:
        args = ["run", str(tiny_spec_path), "--out", str(run), "--lm", "openai/gpt-4o-mini", "--api-base", url,
                "--concurrency", "1"]
        assert main([*args, "--budget", "$0.00001"]) == 4  # EXIT_INCOMPLETE
        err = capsys.readouterr().err
        assert "budget of $1e-05 reached" in err and "higher --budget to resume" in err
        assert url.server.count() == 1
        assert main([*args, "--budget", "$1"]) == 0
        assert url.server.count() == 2
    with Store(run) as store:
        s = spent(store)
    assert s.calls == 2 and s.unpriced_calls == 0
    assert s.cost == pytest.approx(sum(call_cost("openai/gpt-4o-mini", p, c) for _, p, c, _ in calls(run)))
    assert main(["run", str(tiny_spec_path), "--out", str(run), "--budget", "100"]) == 2
    assert "cannot read the budget" in capsys.readouterr().err


def test_estimate_matches_a_real_run(tiny_run, tiny_spec_path, capsys):
    s = synthboot.load_spec(tiny_spec_path)
    actual = calls(tiny_run)
    est = estimate_run(s)
    (gen,) = est.stages
    assert gen.calls == len(actual) == 2 and est.cost == 0.0
    # Prompts are counted with the embedded model's own tokenizer on the prompts DSPy builds.
    assert gen.prompt_tokens == pytest.approx(sum(p for _, p, _, _ in actual), rel=0.05)
    measured = estimate_run(s, measured_from=tiny_run).stages[0]
    assert measured.completion_tokens == round(sum(c for _, _, c, _ in actual) / len(actual) * 2)
    assert measured.lm_seconds is not None and measured.lm_seconds > 0

    remote = estimate_run(s, lm="openai/gpt-4o-mini").stages[0]
    prompt, completion = token_prices("openai/gpt-4o-mini")
    assert remote.cost == pytest.approx(remote.prompt_tokens * prompt + remote.completion_tokens * completion)

    assert main(["estimate", str(tiny_spec_path)]) == 0
    assert "expected: 2 calls" in capsys.readouterr().out


def test_every_long_stage_reports_progress(tmp_path):
    seen: dict[str, list[tuple[int, int]]] = {}
    s = spec(**{"generate.per_topic": 2, "judge.enabled": True})
    synthboot.run(s, tmp_path / "run", lm=scripted_lm([reply], cycle=True), concurrency=1,
                  progress=lambda stage, done, total: seen.setdefault(stage, []).append((done, total)))
    assert set(seen) >= {"generate", "dedup: embed", "judge"}
    for stage, updates in seen.items():
        assert updates[-1][0] == updates[-1][1] > 0, stage  # each ends complete


def test_optimize_evaluations_report_progress():
    import dspy

    from synthboot.optimize import OptimizeSettings, _evaluate

    examples = [dspy.Example(question=f"question {i}?", answer="yes").with_inputs("question") for i in range(5)]
    seen: list[tuple[int, int]] = []
    with dspy.context(lm=scripted_lm([json.dumps({"answer": "yes"})], cycle=True), adapter=dspy.JSONAdapter()):
        result = _evaluate(dspy.Predict("question -> answer"), examples,
                           lambda gold, pred, trace=None: float(gold.answer == pred.answer),
                           OptimizeSettings(num_threads=2), lambda done, total: seen.append((done, total)))
    assert result.score == 100.0
    assert seen[0] == (0, 5) and seen[-1] == (5, 5) and sorted(seen) == seen and len(seen) >= 6
