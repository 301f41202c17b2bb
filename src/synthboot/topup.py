"""Targeted top-up: users get the count they asked for, or are told why not.

After the filters, if fewer than `count` examples survive (or a stratum is short of its
`topup.per_stratum` minimum), another generation round asks for the gap (times `overshoot`, since
filters reject some), aimed at the under-filled strata: batches on the short topics, or batches
whose guidance asks for the short enum value. Then every filter runs again. Rounds stop when the
count is reached, or at `max_rounds` or `max_calls`, and the outcome is stored and reported.

Task keys are fixed by round, stratum and batch, so a resumed run plans the same batches and the
store answers the finished ones.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from synthboot.errors import SpecError
from synthboot.spec import Spec
from synthboot.stages import StageResult, settings_hash
from synthboot.store import Candidate, Store
from synthboot.view import DatasetView
from synthboot.task import Task

if TYPE_CHECKING:  # the generate stage imports DSPy: `status` reads META_KEY without loading it
    from synthboot.stages.generate import GenerateResult, GenerationTask

META_KEY = "topup"
PLANS_KEY = "topup_plans"


@dataclass
class TopUpResult:
    wanted: int
    kept: int = 0
    rounds: int = 0
    calls: int = 0
    reached: bool = False
    stopped_by: str = ""  # 'count', 'max_rounds', 'max_calls' or 'failed calls'
    short: dict[str, int] = field(default_factory=dict)  # stratum -> examples still missing
    stages: list[StageResult] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        if self.reached:
            return f"top-up: {self.kept} kept of {self.wanted} wanted after {self.rounds} round(s), {self.calls} call(s)"
        gaps = ", ".join(f"{k} {v}" for k, v in self.short.items())
        return (f"top-up stopped by {self.stopped_by}: {self.kept} kept of {self.wanted} wanted after {self.rounds} "
                f"round(s), {self.calls} call(s)" + (f"; still short: {gaps}" if gaps else ""))


def stratum_field(spec: Spec) -> str:
    name = spec.topup.stratify or spec.split.stratify or "topic"
    if name != "topic" and name not in Task.of(spec).schema.enum_fields():
        raise SpecError(f"{name!r} is not 'topic' nor an enum field of the task", field="topup.stratify")
    return name


def stratum_value(cand: Candidate, name: str) -> str:
    if name == "topic":
        return cand.topic or ""
    return str((cand.fields or {}).get(name, ""))


def gaps(spec: Spec, kept: list[Candidate]) -> dict[str, int]:
    """Stratum value -> how many more kept examples it needs; '' is the total beyond the strata's needs."""
    name = stratum_field(spec)
    values = spec.topics if name == "topic" else Task.of(spec).schema.enum_fields()[name]
    have = Counter(stratum_value(c, name) for c in kept)
    total_gap = max(0, (spec.count or 0) - len(kept))
    # Without explicit minimums, the total gap is spread so every value heads for an even share.
    minimums = dict(spec.topup.per_stratum) or {v: math.ceil((spec.count or 0) / len(values)) for v in values}
    need = {v: max(0, minimums.get(v, 0) - have.get(v, 0)) for v in values}
    explicit = {v: n for v, n in need.items() if n}
    if spec.topup.per_stratum:
        rest = max(0, total_gap - sum(explicit.values()))
        return {**explicit, **({"": rest} if rest else {})}
    if total_gap == 0:
        return {}
    # Give the total gap to the short values in proportion to how short they are.
    short = explicit or {v: 1 for v in values}
    weight = sum(short.values())
    shares = {v: math.ceil(total_gap * n / weight) for v, n in short.items()}
    return {v: n for v, n in shares.items() if n}


def plan_topup(spec: Spec, round_: int, want: dict[str, int], max_calls: int | None) -> list[GenerationTask]:
    from synthboot.stages.generate import GenerationTask

    name = stratum_field(spec)
    per_call = spec.generate.per_call
    tasks: list[GenerationTask] = []
    for value, n in sorted(want.items()):
        asked = math.ceil(n * spec.topup.overshoot)
        topics = [value] if name == "topic" and value else spec.topics
        for b in range(math.ceil(asked / per_call)):
            topic = topics[b % len(topics)]
            guidance = "" if name == "topic" or not value else (
                f"Top-up round {round_}: the dataset is short of examples with {name} = {value!r}. "
                f"Every example in this batch must have {name} = {value!r}.")
            # Strategies that ask for a cell also pin the short value in the output grammar.
            cell = ((name, value),) if guidance and spec.generate.strategy != "few_shot" else ()
            tasks.append(GenerationTask(key=f"gen:topup{round_}:{name}={value}:{topic}:{b}", topic=topic,
                                        count=min(per_call, asked - b * per_call), round=round_, guidance=guidance,
                                        cell=cell))
    return tasks[:max_calls] if max_calls is not None else tasks


def kept_after(store: Store, judge_hash: str) -> list[Candidate]:
    """The kept examples once the filters have run with `judge_hash` (synthboot.view)."""
    return DatasetView.after(store, judge_hash).kept()


def top_up(store: Store, spec: Spec, generate: Callable[[list[GenerationTask]], GenerateResult],
           refilter: Callable[[], list[StageResult]], current: list[StageResult]) -> TopUpResult:
    """Generate and filter more rounds until `spec.count` examples are kept or a cap is hit.

    `current` holds the filter stages' results so far (validate to judge); `refilter` runs them again.
    """
    from synthboot.stages.generate import GenerationTask

    result = TopUpResult(wanted=spec.count or 0, stages=list(current))
    # Each round's batches are stored before they run and replayed on a re-run: a finished run
    # makes no new call, and an interrupted one resumes the very batches it had planned.
    plans_key = settings_hash("topup", spec.count, spec.topup.model_dump(), spec.generate.per_call)
    all_plans = store.get_meta(PLANS_KEY, {}) or {}
    plans: list[list[dict]] = all_plans.get(plans_key, [])
    for planned in plans:
        result.rounds += 1
        result.calls += len(planned)
        generate([GenerationTask(**t) for t in planned])
    if plans:
        result.stages = refilter()
    kept = kept_after(store, result.stages[-1].settings_hash)
    want = gaps(spec, kept)
    while want:
        if result.rounds >= spec.topup.max_rounds:
            result.stopped_by = "max_rounds"
            break
        budget = None if spec.topup.max_calls is None else spec.topup.max_calls - result.calls
        if budget is not None and budget <= 0:
            result.stopped_by = "max_calls"
            break
        result.rounds += 1
        tasks = plan_topup(spec, result.rounds, want, budget)
        plans.append([asdict(t) for t in tasks])
        store.set_meta(PLANS_KEY, {**all_plans, plans_key: plans})
        generated = generate(tasks)
        # Every planned batch counts, run now or answered from an earlier session: a resumed run
        # then plans exactly the batches the first one did.
        result.calls += len(tasks)
        result.stages = refilter()
        kept = kept_after(store, result.stages[-1].settings_hash)
        want = gaps(spec, kept)
        if want and generated.tasks_failed and not (generated.tasks_run or generated.tasks_skipped):
            result.stopped_by = "failed calls"
            break
    result.kept = len(kept)
    result.reached = not want
    result.stopped_by = "count" if result.reached else result.stopped_by
    result.short = {k or "total": v for k, v in want.items()}
    store.set_meta(META_KEY, {k: v for k, v in asdict(result).items() if k != "stages"})
    return result
