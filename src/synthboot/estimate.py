"""Before a run: how many LM calls, tokens and dollars it should take.

Calls come from the spec's counts (the same `plan_tasks` the run uses). Prompt tokens are counted
on the real prompts DSPy's JSONAdapter builds, with the embedded model's own tokenizer for local
models and about four characters per token otherwise. Completion tokens are measured from an
earlier run's stored calls when one is given (`measured_from`), else sized from the seed examples
(a reply is about `count` seed-sized items) and capped by `max_tokens`. Prices: `synthboot.cost`.

Wall time: from an earlier run's measured latency with `measured_from`, else from typical speeds
(`TYPICAL_SPEEDS`: the embedded models as measured on a 2-core machine, a remote provider's usual
latency and output rate), labelled as an estimate. Batches with the same topic and size share one
prompt count, so a spec of a million items estimates in a moment.
"""

from __future__ import annotations

import atexit
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import dspy
from rich.console import Console
from rich.table import Table

from synthboot.cost import token_prices
from synthboot.lm import is_local, local_model_name
from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.schema import TaskSchema, all_seeds
from synthboot.spec import Spec
from synthboot.stages.generate import make_generator, plan_tasks
from synthboot.stages.strategies import prompt_inputs
from synthboot.store import Store
from synthboot.task import Task

CHAT_TEMPLATE_TOKENS = 6  # role markers per message that the chat template adds
JUDGE_MAX_TOKENS = 400  # pipeline.run gives the judge this many
JUDGE_REPLY_TOKENS = 70  # a one-or-two sentence reasoning and a score, as JSON


@dataclass(frozen=True)
class Speed:
    """How long one call takes: `overhead_s + prompt / prompt_tps + completion / completion_tps`."""

    overhead_s: float
    prompt_tps: float
    completion_tps: float
    parallel: int | None  # calls that really run at once (None: as many as `concurrency`)
    basis: str

    def call_seconds(self, prompt: float, completion: float) -> float:
        return self.overhead_s + prompt / self.prompt_tps + completion / self.completion_tps


# Typical speeds when no earlier run is given. "local": SmolLM2-135M via llama.cpp, 2 single-thread
# instances, fitted to two runs on this project's loaded 2-core machine (BENCHMARKS.md:
# bench/embedded.py, 8 calls of 764 prompt + 50 completion tokens in 93 s at 2 at a time; the issue-5
# run, 10 calls of 929 + 353 tokens in 803 s of LM time): about 53 prompt and 5.7 completion tokens/s
# per instance. An idle or bigger machine is faster. "remote": a hosted API's usual time to first
# token and output rate for small models.
TYPICAL_SPEEDS = {
    "local": Speed(0.0, 53.0, 5.7, 2, "the embedded model's speed measured on a busy 2-core machine"),
    "remote": Speed(0.8, 5000.0, 80.0, None, "a hosted API's typical latency (0.8 s + 80 output tokens/s)"),
}


@dataclass
class StageEstimate:
    stage: str
    lm: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    max_completion_tokens: int
    cost: float | None  # None: the LM's price is unknown
    basis: str
    lm_seconds: float | None = None  # measured latency x calls / concurrency, when measured
    wall_seconds: float | None = None  # the stage's wall time: measured, else from TYPICAL_SPEEDS
    time_basis: str = ""


@dataclass
class Estimate:
    stages: list[StageEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages)

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages)

    @property
    def max_tokens(self) -> int:
        return sum(s.prompt_tokens + s.max_completion_tokens for s in self.stages)

    @property
    def wall_seconds(self) -> float:
        return sum(s.wall_seconds or 0.0 for s in self.stages)

    @property
    def cost(self) -> float | None:
        costs = [s.cost for s in self.stages]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)


@lru_cache(maxsize=4)
def _local_tokenizer(model: str):
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    from synthboot.lm.local import resolve_model_path

    # The vocabulary alone loads in a fraction of a second; llama.cpp warns about the context on stderr.
    with suppress_stdout_stderr(disable=False):
        llama = Llama(model_path=str(resolve_model_path(model)), vocab_only=True, verbose=False)
    # Freed while llama.cpp is still loaded: at interpreter teardown its bindings are gone.
    atexit.register(llama.close)
    return llama


def count_tokens(lm: str, text: str) -> int:
    if is_local(lm):
        return len(_local_tokenizer(local_model_name(lm)).tokenize(text.encode(), add_bos=False, special=False))
    return max(1, round(len(text) / 4))


def prompt_tokens(lm: str, signature: type[dspy.Signature], inputs: dict) -> int:
    messages = JSON_ADAPTER.format(signature, demos=[], inputs=inputs)
    return sum(count_tokens(lm, m["content"]) + CHAT_TEMPLATE_TOKENS for m in messages)


def measured_calls(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per purpose: mean prompt and completion tokens and latency of an earlier run's calls."""
    with Store(run_dir, readonly=True) as store:
        totals = store.call_totals("purpose")
    return {t.name or "other": {"n": t.calls, "prompt": t.prompt_tokens / t.calls,
                                "completion": t.completion_tokens / t.calls, "latency": t.latency_s / t.calls}
            for t in totals if t.calls}


def estimate_run(spec: Spec, *, limit: int | None = None, lm: str | None = None,
                 measured_from: str | Path | None = None) -> Estimate:
    gen_lm = lm or spec.generate.lm
    schema = Task.of(spec).schema
    seeds = all_seeds(spec)
    measured = measured_calls(Path(measured_from)) if measured_from else {}
    out = Estimate()
    concurrency = max(1, spec.generate.concurrency)

    tasks: list[Any]
    if spec.sources is not None:  # one call per chunk (issue 13): the real chunks in the real prompts
        from synthboot.stages.generate_grounded import planned_prompts

        tasks, signature, inputs = planned_prompts(spec, limit=limit)
        prompt = sum(prompt_tokens(gen_lm, signature, i) for i in inputs)
    else:
        # With no topics listed, the LM proposes `generate.subtopics` of them in one more call.
        topics = spec.topics or [f"subtopic {i + 1}" for i in range(spec.generate.subtopics)]
        tasks = plan_tasks(spec, limit=limit, topics=topics)
        # One prompt count per distinct prompt (a strategy's prompt depends on the batch's cell too).
        prompt_batches: Counter = Counter()
        for t in tasks:
            batch_inputs = prompt_inputs(spec, schema, spec.generate.strategy, t, seeds, [])
            prompt_batches[(t.cell, json.dumps(batch_inputs, sort_keys=True))] += 1
        prompt = sum(n * prompt_tokens(gen_lm, make_generator(schema, spec, cell).predictors()[0].signature,
                                       json.loads(key))
                     for (cell, key), n in prompt_batches.items())
    batches = Counter(t.count for t in tasks)  # completion sizes depend on the count alone
    per_item = statistics.fmean(count_tokens(gen_lm, json.dumps(s, ensure_ascii=False)) for s in seeds) if seeds \
        else spec.generate.max_string_length // 4 * max(1, len(schema.names))
    if "generate" in measured:
        m = measured["generate"]
        completion = round(m["completion"] * len(tasks))
        basis = f"completion measured: mean of {m['n']} calls in {measured_from}"
    else:
        completion = sum(n * min(spec.generate.max_tokens, round(count * (per_item + 2)) + 12)
                         for count, n in batches.items())
        basis = f"completion sized from the seeds: about {per_item:.0f} tokens per example"
    out.stages.append(StageEstimate(
        "generate", gen_lm, len(tasks), prompt, completion, spec.generate.max_tokens * len(tasks),
        _cost(gen_lm, prompt, completion), basis,
        _seconds(measured.get("generate"), len(tasks), concurrency)))

    if spec.verify.enabled and spec.verify.lm_check:
        out.stages.append(_verify_estimate(spec, schema, seeds, spec.verify.lm or gen_lm, sum(t.count for t in tasks),
                                           measured, concurrency))
    if spec.judge.enabled:
        judge_lm = spec.judge.lm or gen_lm
        candidates = sum(t.count for t in tasks)
        from synthboot.stages.judge import DEFAULT_RUBRIC, JudgeQuality

        example = json.dumps(seeds[0] if seeds else {n: "" for n in schema.names}, ensure_ascii=False)
        one_prompt = prompt_tokens(judge_lm, JudgeQuality, {"task": spec.task, "rubric": spec.judge.rubric or
                                                             DEFAULT_RUBRIC, "example": example})
        reply = measured["judge"]["completion"] if "judge" in measured else JUDGE_REPLY_TOKENS
        out.stages.append(StageEstimate(
            "judge", judge_lm, candidates, one_prompt * candidates, round(reply * candidates),
            JUDGE_MAX_TOKENS * candidates, _cost(judge_lm, one_prompt * candidates, round(reply * candidates)),
            "at most one verdict per generated candidate (fewer after validation and dedup)",
            _seconds(measured.get("judge"), candidates, concurrency)))
    for stage in out.stages:
        _wall_time(stage, measured.get(stage.stage), concurrency)
    if any(s.cost is None for s in out.stages):
        out.notes.append("an LM's price is not in DSPy's price map: its cost is unknown")
    if not measured:
        out.notes.append("give --from RUN_DIR (an earlier run, e.g. with --limit) to use measured token sizes")
    return out


def _verify_estimate(spec: Spec, schema: TaskSchema, seeds: list[dict], verify_lm: str, candidates: int,
                     measured: dict, concurrency: int) -> StageEstimate:
    """The verifier: k predictions per candidate that reaches it (at most every generated one)."""
    from synthboot.optimize.programs import load_program
    from synthboot.stages.verify import checked_fields

    fields = checked_fields(spec, schema)
    seed = seeds[0] if seeds else {n: "" for n in schema.names}
    # pot asks for a short program instead of the value: about the prompt and reply of `predict`.
    module = "predict" if spec.verify.module == "pot" else spec.verify.module
    program = load_program(f"{', '.join(schema.inputs)} -> {', '.join(fields)}", schema, module)
    signature = program.module.predictors()[0].signature
    one_prompt = prompt_tokens(verify_lm, signature, {n: seed.get(n, "") for n in schema.inputs})
    reply = measured["verify"]["completion"] if "verify" in measured else \
        count_tokens(verify_lm, json.dumps({f: seed.get(f) for f in fields}, ensure_ascii=False)) + 8
    calls = candidates * spec.verify.self_consistency
    return StageEstimate(
        "verify", verify_lm, calls, one_prompt * calls, round(reply * calls), spec.verify.max_tokens * calls,
        _cost(verify_lm, one_prompt * calls, round(reply * calls)),
        f"at most {spec.verify.self_consistency} prediction(s) per generated candidate (fewer after validation "
        "and dedup)", _seconds(measured.get("verify"), calls, concurrency))


def _cost(lm: str, prompt: int, completion: int) -> float | None:
    prices = token_prices(lm)
    return None if prices is None else prompt * prices[0] + completion * prices[1]


def _seconds(measured: dict[str, float] | None, calls: int, concurrency: int) -> float | None:
    return None if not measured else measured["latency"] * calls / concurrency


def _wall_time(stage: StageEstimate, measured: dict[str, float] | None, concurrency: int) -> None:
    if measured:
        stage.wall_seconds, stage.time_basis = stage.lm_seconds, "measured latency of the earlier run"
        return
    speed = TYPICAL_SPEEDS["local" if is_local(stage.lm) else "remote"]
    if not stage.calls:
        stage.wall_seconds, stage.time_basis = 0.0, speed.basis
        return
    per_call = speed.call_seconds(stage.prompt_tokens / stage.calls, stage.completion_tokens / stage.calls)
    parallel = min(concurrency, speed.parallel or concurrency)
    stage.wall_seconds, stage.time_basis = per_call * stage.calls / parallel, speed.basis


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def print_estimate(console: Console, est: Estimate) -> None:
    timed = any(s.lm_seconds is not None for s in est.stages)
    table = Table(title="estimate (cached calls of a resumed run cost nothing)")
    for col in ("stage", "lm", "calls", "prompt tok", "completion tok", "at most tok", "cost") + (("LM time",) if timed else ()):
        table.add_column(col, justify="left" if col in ("stage", "lm") else "right", overflow="fold")
    for s in est.stages:
        table.add_row(s.stage, s.lm, f"{s.calls:,}", f"{s.prompt_tokens:,}", f"{s.completion_tokens:,}",
                      f"{s.prompt_tokens + s.max_completion_tokens:,}", _money(s.cost),
                      *(("-" if s.lm_seconds is None else f"{s.lm_seconds:.0f}s",) if timed else ()))
    console.print(table)
    console.print(f"expected: {est.calls:,} calls, {est.tokens:,} tokens, {_money(est.cost)}, "
                  f"about {format_seconds(est.wall_seconds)} (estimated wall time)", highlight=False)
    for s in est.stages:
        console.print(f"  {s.stage}: {s.basis}; time: {s.time_basis}", highlight=False)
    for note in est.notes:
        console.print(f"note: {note}", highlight=False)


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"
