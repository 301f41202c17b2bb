"""The whole run: spec -> store -> generate -> validate -> dedup -> judge -> split.

Every stage reads from and writes to the run store, so `run` is also resume: finished generation
tasks are skipped, finished LM calls are answered from the store, and filters decide again only
when their settings changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dspy

from synthboot.lm import make_lm
from synthboot.lm.calls import store_as_lm_cache
from synthboot.schema import all_seeds
from synthboot.spec import Spec
from synthboot.stages import StageResult
from synthboot.stages.dedup import run_dedup
from synthboot.stages.generate import GenerateResult, plan_tasks, run_generate
from synthboot.stages.judge import run_judge
from synthboot.stages.split import run_split
from synthboot.stages.validate import run_validate
from synthboot.store import Store

# (stage name, done, total): how long stages report progress.
Progress = Callable[[str, int, int], None]


@dataclass
class RunResult:
    run_dir: Path
    generate: GenerateResult
    stages: list[StageResult] = field(default_factory=list)
    lm_calls_made: int = 0
    lm_calls_cached: int = 0


def run(spec: Spec, out: str | Path, *, lm: str | dspy.LM | None = None, api_base: str | None = None,
        limit: int | None = None, concurrency: int | None = None, progress: Progress | None = None) -> RunResult:
    """Run (or resume) the pipeline for `spec` in the run directory `out`.

    `lm` overrides the spec's generator: a model string, or any configured `dspy.LM`.
    """
    lm_object = lm if isinstance(lm, dspy.LM) else None
    if lm_object is not None:
        lm = lm_object.model
    if lm is not None:
        spec = spec.model_copy(update={"generate": spec.generate.model_copy(update={"lm": lm, "api_base": api_base})})
    elif api_base is not None:
        spec = spec.model_copy(update={"generate": spec.generate.model_copy(update={"api_base": api_base})})
    workers = concurrency or spec.generate.concurrency
    with Store(out, create=True, lock=True) as store:
        store.save_spec(spec.content_hash(), spec.model_dump(mode="json", by_alias=True))
        store.set_meta("run_settings", {"limit": limit, "lm": spec.generate.lm})
        store.add_seeds(all_seeds(spec))
        with store_as_lm_cache(store) as cache:
            gen_lm = lm_object or make_lm(spec.generate.lm, api_base=spec.generate.api_base,
                             temperature=spec.generate.temperature, max_tokens=spec.generate.max_tokens,
                             instances=workers)
            tasks = plan_tasks(spec, limit=limit)
            gen = run_generate(store, spec, gen_lm, tasks, concurrency=workers,
                               on_progress=_stage_progress(progress, "generate"))
            result = RunResult(Path(out), gen)
            validate = run_validate(store, spec)
            dedup = run_dedup(store, spec, validate.settings_hash)
            judge_lm = None
            if spec.judge.enabled:
                judge_lm = gen_lm if not spec.judge.lm or spec.judge.lm == spec.generate.lm else make_lm(
                    spec.judge.lm, api_base=spec.judge.api_base, temperature=0.0, max_tokens=400, instances=workers)
            judge = run_judge(store, spec, judge_lm, dedup.settings_hash, concurrency=workers,
                              on_progress=_stage_progress(progress, "judge"))
            split = run_split(store, spec, judge.settings_hash)
            result.stages = [validate, dedup, judge, split]
            store.set_meta("stage_hashes", {s.stage: s.settings_hash for s in result.stages})
            result.lm_calls_made, result.lm_calls_cached = cache.misses, cache.hits
    return result


def _stage_progress(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)
