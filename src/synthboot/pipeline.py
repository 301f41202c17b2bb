"""The whole run: spec -> store -> generate -> validate -> dedup -> verify -> judge -> split.

Every stage reads from and writes to the run store, so `run` is also resume: finished generation
tasks are skipped, finished LM calls are answered from the store, and filters decide again only
when their settings changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from synthboot.engines import get_engine
from synthboot.errors import RunMismatchError, SynthbootError
from synthboot.sources import load_chunks
from synthboot.stages.generate_grounded import plan_grounded_tasks, run_generate_grounded
from synthboot.cost import Budget, BudgetGuard, parse_budget
from synthboot.lm import make_lm
from synthboot.lm.limits import limits_of
from synthboot.lm.calls import store_as_lm_cache
from synthboot.schema import all_seeds
from synthboot.spec import Spec
from synthboot.stages import StageResult
from synthboot.stages.generate import GenerateResult, plan_tasks
from synthboot.stages.grounding import run_grounding
from synthboot.stages.split import run_split
from synthboot.stages.subtopics import resolve_topics, with_topics
from synthboot.stages.diversity import record as record_diversity
from synthboot.store import Store
from synthboot.topup import TopUpResult, top_up
from synthboot.view import DatasetView

# (stage name, done, total): how long stages report progress.
Progress = Callable[[str, int, int], None]


@dataclass
class RunResult:
    run_dir: Path
    generate: GenerateResult
    stages: list[StageResult] = field(default_factory=list)
    lm_calls_made: int = 0
    lm_calls_cached: int = 0
    topup: TopUpResult | None = None


def run(spec: Spec, out: str | Path, *, lm: str | dspy.LM | None = None, api_base: str | None = None,
        limit: int | None = None, concurrency: int | None = None, progress: Progress | None = None,
        engine: str = "local", ray_address: str | None = None, requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None, budget: Budget | str | None = None,
        force: bool = False) -> RunResult:
    """Run (or resume) the pipeline for `spec` in the run directory `out`.

    `lm` overrides the spec's generator: a model string, or any configured `dspy.LM`.
    `engine` is 'local' (threads here) or 'ray' (a Ray cluster at `ray_address`, default a local
    one); the store stays here either way. The rate limits override the spec's.
    `budget` ('$2', '200k tokens' or a `Budget`) caps what the run spends in total, over all its
    sessions: when reached, no new LM call starts, the work done is stored, and `BudgetExhausted`
    is raised; run again with a higher budget to resume.
    `force` runs into a directory that holds a run of another task or other fields (otherwise a
    `RunMismatchError`): the old candidates stay, and are judged by the new schema.
    """
    lm_object = lm if isinstance(lm, dspy.LM) else None
    if lm_object is not None:
        lm = lm_object.model
    if lm is not None:
        spec = spec.model_copy(update={"generate": spec.generate.model_copy(update={"lm": lm, "api_base": api_base})})
    elif api_base is not None:
        spec = spec.model_copy(update={"generate": spec.generate.model_copy(update={"api_base": api_base})})
    workers = concurrency or _engine_concurrency(lm_object, spec) or spec.generate.concurrency
    limits = limits_of(spec.generate, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
    stages = get_engine(engine, ray_address=ray_address, limits=limits)
    with Store(out, create=True, lock=True) as store:
        if not force:
            check_same_task(store.latest_spec(), spec, out)
        store.save_spec(spec.content_hash(), spec.model_dump(mode="json", by_alias=True))
        store.set_meta("run_settings", {"limit": limit, "lm": spec.generate.lm})
        store.add_seeds(all_seeds(spec))
        with store_as_lm_cache(store) as cache:
            gen_lm = lm_object or make_lm(spec.generate.lm, api_base=spec.generate.api_base,
                             temperature=spec.generate.temperature, max_tokens=spec.generate.max_tokens,
                             instances=workers, limits=limits)
            if spec.sources is None:
                # No topics in the spec: the LM proposes them once; the run keeps them (stages.subtopics),
                # and the stored spec carries them so every later command sees the same topics.
                spec = with_topics(spec, resolve_topics(store, spec, gen_lm))
                store.save_spec(spec.content_hash(), spec.model_dump(mode="json", by_alias=True))
            guard = None if budget is None else BudgetGuard(
                store, parse_budget(budget) if isinstance(budget, str) else budget,
                [spec.generate.lm, spec.judge.lm or spec.generate.lm if spec.judge.enabled else None,
                 spec.verify.lm or spec.generate.lm if spec.verify.enabled else None])
            # Passed only with a budget, so engines that take no `should_stop` still run without one.
            stop: dict[str, Any] = {} if guard is None else {"should_stop": guard.exhausted}
            if spec.sources is not None:
                # Documents as the source (issue 13): one task per chunk, grounded in it.
                if engine != "local":
                    raise SynthbootError("a spec with `sources` runs on the local engine only, for now")
                chunks = load_chunks(spec)
                store.sync_chunks(chunks)
                gen = run_generate_grounded(store, spec, gen_lm, plan_grounded_tasks(spec, chunks, limit=limit),
                                            concurrency=workers, on_progress=_stage_progress(progress, "generate"),
                                            **stop)
            else:
                gen = stages.run_generate(store, spec, gen_lm, plan_tasks(spec, limit=limit), concurrency=workers,
                                          on_progress=_stage_progress(progress, "generate"), **stop)
            result = RunResult(Path(out), gen)
            validate = stages.run_validate(store, spec)
            judge_lm = None
            if spec.judge.enabled or (spec.sources and (spec.sources.grounding.judge
                                                        or spec.sources.grounding.closed_book)):
                judge_lm = gen_lm if not spec.judge.lm or spec.judge.lm == spec.generate.lm else make_lm(
                    spec.judge.lm, api_base=spec.judge.api_base, temperature=0.0, max_tokens=400, instances=workers,
                    limits=limits)
            grounding = run_grounding(store, spec, judge_lm, validate.settings_hash, concurrency=workers,
                                      on_progress=_stage_progress(progress, "grounding"))
            dedup = stages.run_dedup(store, spec, grounding.settings_hash,
                                     on_progress=_stage_progress(progress, "dedup: embed"))
            verify_lm = None
            if spec.verify.enabled and spec.verify.lm_check:
                verify_lm = gen_lm if not spec.verify.lm or spec.verify.lm == spec.generate.lm else make_lm(
                    spec.verify.lm, api_base=spec.verify.api_base, temperature=0.0,
                    max_tokens=spec.verify.max_tokens, instances=workers, limits=limits)
            verify = stages.run_verify(store, spec, verify_lm, dedup.settings_hash, concurrency=workers,
                                       on_progress=_stage_progress(progress, "verify"), **stop)
            judge = stages.run_judge(store, spec, judge_lm if spec.judge.enabled else None, verify.settings_hash,
                                     concurrency=workers, on_progress=_stage_progress(progress, "judge"), **stop)
            if spec.count:
                # Targeted top-up (synthboot.topup): more rounds until `count` examples survive every filter.
                def refilter() -> list[StageResult]:
                    v = stages.run_validate(store, spec)
                    g = run_grounding(store, spec, judge_lm, v.settings_hash)
                    d = stages.run_dedup(store, spec, g.settings_hash)
                    c = stages.run_verify(store, spec, verify_lm, d.settings_hash, concurrency=workers, **stop)
                    return [v, g, d, c, stages.run_judge(store, spec, judge_lm, c.settings_hash, concurrency=workers,
                                                      **stop)]

                result.topup = top_up(store, spec, lambda more: stages.run_generate(
                    store, spec, gen_lm, more, concurrency=workers, on_progress=_stage_progress(progress, "top-up"),
                    **stop), refilter, [validate, grounding, dedup, verify, judge])
                validate, grounding, dedup, verify, judge = result.topup.stages
            split = run_split(store, spec, judge.settings_hash)
            result.stages = [validate, grounding, dedup, verify, judge, split]
            store.set_meta("stage_hashes", {s.stage: s.settings_hash for s in result.stages})
            record_diversity(store, spec, DatasetView(store).kept())  # embedding metrics, for `status`
            result.lm_calls_made, result.lm_calls_cached = cache.misses, cache.hits
            if guard is not None and guard.stopped_work:
                left = gen.tasks_total - gen.tasks_skipped - gen.tasks_run - gen.tasks_failed
                raise guard.error(f"{left} of {gen.tasks_total} generation tasks and "
                                  f"{sum(1 for s, _ in DatasetView(store).outcomes.values() if s == 'pending')} "
                                  "candidates' verdicts left to do")
    return result


def task_identity(body: dict) -> dict:
    """What makes two specs the same dataset: the task text and the fields' names, types, values and
    roles. Constraints, rules and every stage setting may change between runs: that is re-filtering."""
    fields = {name: {k: f.get(k) for k in ("type", "values", "input")}
              for name, f in (body.get("fields") or {}).items()}
    return {"task": body.get("task"), "fields": fields, "schema": body.get("schema"), "inputs": body.get("inputs")}


def check_same_task(stored: dict | None, spec: Spec, out: str | Path) -> None:
    """Refuse to run `spec` into a run directory holding another task (`force=True` allows it)."""
    if stored is None:
        return
    old, new = task_identity(stored), task_identity(spec.model_dump(mode="json", by_alias=True))
    if old == new:
        return
    if old["task"] != new["task"]:
        what = "a different task"
    else:
        changed = sorted(set(old["fields"]) ^ set(new["fields"])) or sorted(
            n for n in old["fields"] if old["fields"][n] != new["fields"].get(n)) or ["schema/inputs"]
        what = f"different fields ({', '.join(changed)})"
    raise RunMismatchError(f"{out} holds a run of {what} than this spec; running into it would mix two datasets: "
                           "use another --out, or --force to add to it anyway")


def _stage_progress(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def _engine_concurrency(lm: dspy.LM | None, spec: Spec) -> int | None:
    """Calls in flight an LM's engine asks for (a batched `LlamaCppEngine`: instances x parallel),
    unless the spec sets `generate.concurrency` itself."""
    if lm is None or "concurrency" in spec.generate.model_fields_set:
        return None
    return getattr(getattr(lm, "engine", None), "concurrency", None)
