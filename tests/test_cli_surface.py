"""The command line's surface: --version, -v, one-line errors, exit codes, --json, custom rules beside
the spec, estimate without --from, the mock provider."""

from __future__ import annotations

import json
import logging
import os
import re

import pytest

import synthboot
from synthboot.cli import main
from synthboot.cli.output import JSON_SCHEMA_VERSION, set_verbosity
from synthboot.errors import (EXIT_INCOMPLETE, EXIT_PROVIDER, EXIT_USAGE, BudgetExhausted, LMUnavailableError,
                              ProviderError, RunIncompleteError, SpecError)
from synthboot.messages import one_line, provider_message, shorten

from .conftest import TINY_SPEC

# What LiteLLM and DSPy print for a rejected key: wrappers, the provider's JSON, router notes, lines.
LITELLM_AUTH = (
    "litellm.AuthenticationError: AuthenticationError: OpenAIException - Error code: 401 - {'error': "
    "{'message': 'Incorrect API key provided: <redacted>. You can find your API key at "
    "https://platform.openai.com/account/api-keys.', 'type': 'invalid_request_error', 'param': None, "
    "'code': 'invalid_api_key'}}\nReceived Model Group=gpt-4o-mini\nAvailable Model Group Fallbacks=None "
    "LiteLLM Retried: 2 times, LiteLLM Max Retries: 3 RouterConfig about the router and a very long tail")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"synthboot {synthboot.__version__}"


def test_provider_message_is_the_providers_sentence_whole():
    text = provider_message(LITELLM_AUTH)
    assert text == ("Incorrect API key provided: <redacted>. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.")
    assert "\n" not in provider_message("line one\nline two") == "line one line two"


def test_shorten_cuts_between_words():
    words = "alpha beta gamma delta epsilon zeta eta theta"
    cut = shorten(words, 20)
    assert len(cut) <= 20 and cut.endswith("…")
    assert all(w in words.split() for w in cut.rstrip("…").split())  # no word cut in half


def test_one_line_shortens_a_100kb_value_and_keeps_the_resume_hint():
    topic = " ".join(f"word{i % 500}" for i in range(15_000))  # about 100 KB
    message = (f"1 generation task(s) failed (first error: gen:r0:{topic}:0: LMUnexpectedError: context "
               f"exceeded); everything else is stored: resume with: synthboot run spec.yaml --out run")
    line = one_line(message)
    assert len(line) < 400 and "\n" not in line
    assert f"({len(topic):,} chars)" in line and line.endswith("resume with: synthboot run spec.yaml --out run")
    quoted = one_line(f"topics[1]: unknown topic {topic!r}")
    assert len(quoted) < 200 and "chars)" in quoted


def test_exit_codes_are_distinct_per_kind():
    assert SpecError("x").exit_code == EXIT_USAGE == 2
    assert ProviderError("x").exit_code == EXIT_PROVIDER == 3
    assert LMUnavailableError("no such model").exit_code == EXIT_USAGE  # a bad --lm is a bad argument
    assert RunIncompleteError("x").exit_code == BudgetExhausted("x").exit_code == EXIT_INCOMPLETE == 4


def test_cli_error_is_one_line_and_the_whole_message_is_logged(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check = "no_such_check_" + "x" * 100_000  # quoted back in the message
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY_SPEC.replace("rules:\n", f"rules:\n  - {{name: long, check: {check}}}\n"))
    assert main(["estimate", str(spec)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 700, lines[0][:2000]
    assert "unknown check" in lines[0] and "(100,014 chars)" in lines[0]
    assert check in (tmp_path / "synthboot-error.log").read_text()  # the whole message is kept


def test_quiet_by_default_verbose_with_v(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    set_verbosity(False)
    try:
        assert os.environ["TQDM_DISABLE"] == "1"
        assert not logging.getLogger("dspy.teleprompt").isEnabledFor(logging.WARNING)
        assert logging.getLogger("dspy").isEnabledFor(logging.ERROR)
        set_verbosity(True)
        assert "TQDM_DISABLE" not in os.environ
        assert logging.getLogger("dspy").isEnabledFor(logging.INFO)
    finally:
        logging.disable(logging.NOTSET)


def test_status_json(tiny_run, capsys):
    assert main(["status", str(tiny_run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == JSON_SCHEMA_VERSION and doc["kind"] == "status"
    funnel = doc["funnel"]
    assert funnel["generated"] >= funnel["kept"] >= 0 and funnel["judged_ok"] is None  # the judge is off
    assert doc["splits"].keys() == {"train", "dev", "test"} and sum(doc["splits"].values()) == funnel["kept"]
    assert doc["calls"]["calls"] == 2 and doc["complete"] is True
    assert set(doc) >= {"run_dir", "spec_name", "rejected", "dedup_by_layer", "diversity", "optimization"}


def test_estimate_json_has_a_wall_time_without_from(tiny_spec_path, capsys):
    assert main(["estimate", str(tiny_spec_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "estimate" and doc["calls"] == 2 and doc["wall_seconds"] > 0
    assert "measured on a busy 2-core machine" in doc["stages"][0]["time_basis"]
    assert main(["estimate", str(tiny_spec_path)]) == 0
    assert "(estimated wall time)" in capsys.readouterr().out


def test_a_million_items_estimate_with_one_prompt_count_per_distinct_batch(tmp_path, monkeypatch):
    from synthboot import estimate

    counted = []
    real = estimate.prompt_tokens
    monkeypatch.setattr(estimate, "prompt_tokens", lambda *a: counted.append(a) or real(*a))
    spec = synthboot.parse_spec(TINY_SPEC.replace("per_topic: 2, per_call: 2", "per_topic: 500000, per_call: 5"))
    est = estimate.estimate_run(spec, lm="openai/gpt-4o-mini")
    # The default (conditioned) strategy asks for one cell per call: two topics x three difficulties,
    # one batch size -> six distinct prompts, each counted once.
    assert est.calls == 200_000 and len(counted) == 6
    per_cell = [real(*a) for a in counted]  # about 200,000 / 6 calls of each distinct prompt
    assert est.wall_seconds > 0 and est.stages[0].prompt_tokens == pytest.approx(200_000 / 6 * sum(per_cell), rel=1e-4)


def test_concurrency_is_bounded_on_the_cli(tiny_spec_path, tmp_path):
    assert main(["run", str(tiny_spec_path), "--out", str(tmp_path / "r"), "--concurrency", "257"]) == 2


def test_custom_rule_module_beside_the_spec_needs_no_pythonpath(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "polish_beside_rules.py").write_text(
        "def mentions_python(example):\n    return 'python' in example['question'].lower() or 'no python'\n")
    spec = folder / "spec.yaml"
    spec.write_text(TINY_SPEC.replace("rules:\n", "rules:\n  - {name: off_topic, check: polish_beside_rules:mentions_python}\n"))
    monkeypatch.chdir(tmp_path)  # neither the cwd nor sys.path holds the module
    loaded = synthboot.load_spec(spec)
    from synthboot.rules import compile_rules
    from synthboot.schema import TaskSchema

    rules = compile_rules(loaded.rules, TaskSchema.from_spec(loaded), loaded.base_dir)
    check = dict((r.name, fn) for r, fn in rules)["off_topic"]
    assert check({"question": "Why Python?"}) is None and check({"question": "Why?"}) == "no python"
    assert str(folder) not in [os.path.abspath(p) for p in __import__("sys").path]  # not left on the path


def test_mock_lm_runs_a_spec_for_free(tiny_spec_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(tiny_spec_path), "--out", str(run_dir), "--lm", "mock", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "run" and doc["lm_calls_made"] == 2
    status = doc["status"]
    assert status["funnel"]["generated"] == 4 and status["funnel"]["parsed"] == 4  # schema-shaped replies
    assert status["calls"]["cost"] == 0.0


def test_notebook_html_tables(tiny_run):
    from synthboot.optimize import OptimizeReport, Score
    from synthboot.status import run_status

    html = run_status(tiny_run)._repr_html_()
    assert html.count("<table>") >= 3 and "kept" in html and "judged" not in html  # the tiny spec has no judge
    report = OptimizeReport(7, 0, {"metric": "token_f1", "optimizer": "bootstrap"}, None,
                            scores={("dev", "baseline"): Score(5, 0.2, 0.1, 0.3),
                                    ("dev", "optimized"): Score(5, 0.4, 0.2, 0.6)})
    html = report._repr_html_()
    assert "<th>token_f1</th>" in html and "[0.200, 0.600]" in html and "optimize run 7" in html


def test_report_funnel_has_no_judged_stage_without_a_judge_and_names_the_metric(tiny_run):
    from synthboot.optimize import OptimizeReport, Score
    from synthboot.report import collect
    from synthboot.report.figures import funnel, optimization

    data = collect(tiny_run)
    stages = list(funnel(data).data[0].y)
    assert "judged" not in stages and stages[:5] == ["generated", "parsed", "schema-valid", "rule-valid", "unique"]
    assert stages[-1] == "kept"
    data.optimize = [OptimizeReport(1, 0, {"metric": "semantic_f1"}, None, scores={("dev", "baseline"):
                                                                                     Score(3, 0.5, 0.4, 0.6)})]
    fig = optimization(data)
    assert fig.layout.yaxis.title.text == "semantic_f1" and "semantic_f1" in fig.layout.title.text


def test_review_page_shows_the_matched_examples_text(tmp_path):
    from markupsafe import escape
    from starlette.testclient import TestClient

    from synthboot.lm.scripted import scripted_lm
    from synthboot.report.data import candidate_rows
    from synthboot.report.review_app import create_app
    from synthboot.store import Store

    # A scripted generator that writes every example twice: dedup removes each second copy.
    item = {"question": "How do you open a file for appending in Python?",
            "answer": "Call open() with mode 'a', which writes at the end of the file.", "difficulty": "easy"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY_SPEC)
    run = tmp_path / "run"
    synthboot.run(synthboot.load_spec(spec), run,
                  lm=scripted_lm([json.dumps({"examples": [item, item]})], cycle=True))
    with Store(run) as store:
        rows = candidate_rows(store)
    dup = next(r for r in rows if r.matched_id is not None)
    matched = next(r for r in rows if r.id == dup.matched_id)
    with TestClient(create_app(run)) as client:
        page = client.get("/", params={"outcome": "dedup"}).text
    assert f"duplicate of #{dup.matched_id}: <q>" in page
    assert str(escape(matched.text(list(matched.fields))))[:40] in page


def test_mock_server_command_answers_schema_shaped_json(tmp_path):
    import sys
    import urllib.request

    from .support.procs import env, start

    proc = start([sys.executable, "-m", "synthboot.cli", "mock-server", "--port", "0"], env=env())
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", line).group(0)
        schema = {"type": "object", "properties": {"label": {"enum": ["yes", "no"]}, "n": {"type": "integer"}}}
        body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
        request = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            content = json.loads(json.loads(reply.read())["choices"][0]["message"]["content"])
        assert content["label"] in ("yes", "no") and isinstance(content["n"], int)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_optimize_output_is_one_display_and_stdout_only_tables(tmp_path, capsys):
    """On the mock LM: DSPy's own prints and logs stay out; each progress step ends once."""
    from .conftest import EXAMPLE_SPEC

    run_dir = tmp_path / "run"
    assert main(["run", str(EXAMPLE_SPEC), "--out", str(run_dir), "--lm", "mock", "--limit", "40"]) == 0
    capsys.readouterr()
    assert main(["optimize", str(run_dir), "--lm", "mock", "--program", "question -> answer", "--module", "predict",
                 "--metric", "token_f1"]) == 0
    out, err = capsys.readouterr()
    assert "Bootstrapped" not in out + err and "Average Metric" not in out + err  # DSPy's print and tqdm
    assert out.lstrip().startswith("optimize:")  # stdout begins with our table
    ends = [line for line in err.splitlines() if re.search(r": (\d+)/\1 ", line)]
    assert ends and len(ends) == len(set(ends))  # every finished step printed once


def test_a_refused_key_is_one_readable_line_exit_3_and_logged_whole(tmp_path, capsys, monkeypatch):
    from .support.faults import write_spec
    from .support.openai_server import serve

    key = "sk-polish-" + "a1b2c3d4" * 4
    monkeypatch.setenv("OPENAI_API_KEY", key)
    spec = write_spec(tmp_path)
    with serve(script=lambda n, body: "401") as url:
        code = main(["run", str(spec), "--out", str(tmp_path / "run"), "--lm", "openai/fake", "--api-base", url])
    assert code == EXIT_PROVIDER
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Incorrect API key provided: <redacted>." in lines[0], lines
    assert "To fix" not in lines[0] and key not in lines[0]
    log = (tmp_path / "run" / "synthboot-error.log").read_text()
    assert "detail:" in log and "example.invalid/keys" in log and key not in log
