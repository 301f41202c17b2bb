"""Generate: ask the generator LM for candidates, in batches spread across topics.

Each batch is a task with a stable key (round, topic, batch index). A finished task's candidates
and its LM call are in the store, so a resumed run skips it; a task killed mid-call runs again and,
if its LM call had finished, is answered from the store at no cost. Items are parsed one by one so
one bad item does not sink its batch; a reply that does not parse at all is kept as a candidate
with its parse error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import dspy

from synthboot.errors import SynthbootError
from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.lm.failures import FailureStreak, fatal_error
from synthboot.secrets import scrub
from synthboot.schema import TaskSchema, all_seeds
from synthboot.spec import Spec
from synthboot.stages import strategies
from synthboot.stages.strategies import seeds_shown  # noqa: F401 - part of this module's interface
from synthboot.store import Store
from synthboot.task import Task

STAGE = "generate"


@dataclass(frozen=True)
class GenerationTask:
    key: str
    topic: str
    count: int
    round: int = 0
    # Extra guidance for this batch (top-up and failure-driven growth aim batches with it).
    guidance: str = ""
    # The target cell ((enum field, value), ...) the strategy asks for and pins in the grammar.
    cell: tuple[tuple[str, str], ...] = ()
    # Batches of wave w run after every batch of earlier waves: strategies that show earlier
    # examples (style_seeds, mutate) read only waves before their own, so prompts are reproducible.
    wave: int = 0
    slot: int = 0  # rotation index (seed window, mutation source): topic index + batch index
    mutation: str = ""  # the `mutate` strategy's change: subject, constraint or enum

    def __post_init__(self) -> None:
        # Stored plans come back from JSON with lists; keep the task hashable.
        object.__setattr__(self, "cell", tuple(tuple(pair) for pair in self.cell))


@dataclass
class TaskGuard:
    """Whether a generation task may start, and what its failure does to the stage's other tasks.

    Checked as each task starts, on the worker: a stop (budget, Ctrl-C), a server that fails every
    call (the streak) or one error no other task can get past (a bad key, a broken spec) leaves the
    tasks not yet started undone for the next run.
    """

    model: str
    should_stop: Callable[[], bool] | None = None
    streak: FailureStreak = field(default_factory=lambda: FailureStreak(STAGE))
    halted: threading.Event = field(default_factory=threading.Event)

    def run(self, work: Callable[[], int]) -> int | None:
        """`work()`'s candidate count, or None when the task was left undone."""
        if (self.should_stop and self.should_stop()) or self.streak.tripped or self.halted.is_set():
            return None
        try:
            count = work()
        except Exception as exc:
            self.streak.failed(exc)
            if isinstance(exc, SynthbootError) or fatal_error(exc, self.model) is not None:
                self.halted.set()
            raise
        self.streak.succeeded()
        return count

    def raise_if_tripped(self, api_base: str | None) -> None:
        if self.streak.tripped:
            raise self.streak.error(self.model, api_base)


@dataclass
class GenerateResult:
    tasks_total: int = 0
    tasks_run: int = 0
    tasks_skipped: int = 0
    tasks_failed: int = 0
    candidates: int = 0
    errors: list[str] = field(default_factory=list)


def plan_tasks(spec: Spec, *, limit: int | None = None, round: int = 0,
               topics: list[str] | None = None) -> list[GenerationTask]:
    """The batches of a round, round-robin over topics so any prefix covers topics evenly.

    `limit` caps the number of candidates asked for, shared evenly across the topics (so a quick
    `--limit 40` run still covers every topic of ten). `topics` overrides the spec's (the LM's
    proposed subtopics). Each batch carries what its strategy needs: its target cell, its wave.
    """
    per_call, per_topic = spec.generate.per_call, spec.generate.per_topic
    topics = list(topics if topics is not None else spec.topics)
    strategy = spec.generate.strategy
    schema = Task.of(spec).schema
    quota = {t: per_topic for t in topics}
    if limit is not None and limit < per_topic * len(topics):
        base, extra = divmod(limit, len(topics))
        quota = {t: min(per_topic, base + (1 if i < extra else 0)) for i, t in enumerate(topics)}
    tasks = []
    for b in range(math.ceil(per_topic / per_call)):
        for i, topic in enumerate(topics):
            count = min(per_call, quota[topic] - b * per_call)
            if count <= 0:
                continue
            if strategy == "few_shot":
                tasks.append(GenerationTask(key=f"gen:r{round}:{topic}:{b}", topic=topic, count=count, round=round))
                continue
            mutation = strategies.mutation_of(spec, schema, i, b) if strategy == "mutate" else ""
            cell = strategies.plan_cell(spec, schema, i, b, topic) if mutation in ("", "enum") else ()
            label = "".join(f":{v}" for k, v in cell if k != strategies.TOPIC_FIELD) + (f":{mutation}" if mutation else "")
            tasks.append(GenerationTask(
                key=f"gen:r{round}:{strategy}:{topic}:{b}{label}", topic=topic, count=count, round=round,
                cell=cell, wave=b if strategy in strategies.USES_HISTORY else 0, slot=i + b, mutation=mutation))
    return tasks


def make_generator(schema: TaskSchema, spec: Spec, cell: tuple = ()) -> dspy.Module:
    """The strategy's DSPy module: its inputs -> examples: list[Example] (cell fields pinned)."""
    return strategies.make_module(schema, spec, spec.generate.strategy, cell)


def run_generate(store: Store, spec: Spec, lm: dspy.LM, tasks: list[GenerationTask], *,
                 concurrency: int = 1, on_progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> GenerateResult:
    """Run the tasks not yet done; store each one's candidates as it completes."""
    schema = Task.of(spec).schema
    strategy = spec.generate.strategy
    generators: dict[tuple, dspy.Module] = {}
    generators_lock = threading.Lock()
    seeds = all_seeds(spec)
    done = store.done_tasks(STAGE)
    todo = [t for t in tasks if t.key not in done]
    result = GenerateResult(tasks_total=len(tasks), tasks_skipped=len(tasks) - len(todo))

    guard = TaskGuard(lm.model, should_stop)

    def generator_for(cell: tuple) -> dspy.Module:
        with generators_lock:
            if cell not in generators:
                generators[cell] = make_generator(schema, spec, cell)
            return generators[cell]

    def one(task: GenerationTask, history: list) -> int | None:
        def work() -> int:
            inputs = strategies.prompt_inputs(spec, schema, strategy, task, seeds, history)
            return _run_task(store, spec, schema, generator_for(task.cell), lm, inputs, task)
        return guard.run(work)

    def waves() -> Iterator[list[tuple[GenerationTask, Callable[[], int | None]]]]:
        # A wave's history is read only once the wave before it has finished (the generator is lazy).
        for wave in sorted({t.wave for t in todo}):
            history = _history(store, tasks, wave) if strategy in strategies.USES_HISTORY else []
            yield [(task, functools.partial(one, task, history)) for task in todo if task.wave == wave]

    run_task_waves(store, result, lm, waves(), concurrency=concurrency, thread_name="generate",
                   topic_of=lambda task: task.topic, total=len(tasks), on_progress=on_progress)
    guard.raise_if_tripped(spec.generate.api_base)
    return result


def run_task_waves(store: Store, result: GenerateResult, lm: dspy.LM,
                   waves: Iterable[list[tuple[Any, Callable[[], int | None]]]], *, concurrency: int,
                   thread_name: str, topic_of: Callable[[Any], str | None], total: int,
                   on_progress: Callable[[int, int], None] | None) -> None:
    """Run generation jobs (task, job) on one pool, wave after wave, counting them into `result`.

    A job returns the candidates it stored, or None when it was left undone for the next run. Every
    task of a wave is queued at once and each worker takes the next as soon as it is free: with many
    calls in flight, handing each next task out from this thread would idle a slot for as long as
    this thread waits for the GIL. Results land in the store as each job completes, so a crash
    loses only the calls in flight.
    """
    finished = result.tasks_skipped
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix=thread_name)
    try:
        for wave in waves:
            futures = {pool.submit(job): task for task, job in wave}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    count = future.result()
                    if count is None:
                        continue
                    result.candidates += count
                    result.tasks_run += 1
                except Exception as exc:  # an LM failure is recorded, the run goes on
                    record_task_failure(store, result, lm, exc, key=task.key, topic=topic_of(task), round=task.round)
                finished += 1
                if on_progress:
                    on_progress(finished, total)
    except BaseException as exc:
        # On Ctrl-C/SIGTERM do not wait for the calls in flight (a hung server, retries asleep, a
        # slow local call): their replies would be lost anyway, and the user asked to stop now.
        pool.shutdown(wait=not isinstance(exc, KeyboardInterrupt), cancel_futures=True)
        raise
    pool.shutdown()


def record_task_failure(store: Store, result: GenerateResult, lm: dspy.LM, exc: Exception, *, key: str,
                        topic: str | None, round: int) -> None:
    """A generation task that raised: counted, its error kept and stored; re-raised when the stage
    cannot go on (a `SynthbootError`, or an LM error no other task can get past)."""
    result.tasks_failed += 1
    result.errors.append(scrub(f"{key}: {type(exc).__name__}: {exc}"))
    store.fail_task(key=key, stage=STAGE, topic=topic, round=round, error=f"{type(exc).__name__}: {exc}")
    store.add_failure(purpose=STAGE, task_key=key, model=lm.model, error=exc)
    if isinstance(exc, SynthbootError):
        raise exc
    if (fatal := fatal_error(exc, lm.model)) is not None:
        raise fatal from None


def _history(store: Store, tasks: list[GenerationTask], wave: int) -> list:
    """The candidates of this plan's batches in waves before `wave`, in generation order."""
    from synthboot.stages import generation_order

    earlier = {t.key for t in tasks if t.wave < wave}
    if not earlier:
        return []
    return sorted((c for c in store.candidates(origin="lm") if c.task_key in earlier), key=generation_order)


def _run_task(store: Store, spec: Spec, schema: TaskSchema, generator: dspy.Module, lm: dspy.LM,
              inputs: dict[str, Any], task: GenerationTask) -> int:
    # The seed makes each batch a distinct request (and sample) even when its prompt repeats.
    seed = int.from_bytes(hashlib.sha256(task.key.encode()).digest()[:4], "big")
    parse_error = None
    with dspy.context(lm=lm, adapter=JSON_ADAPTER), call_scope(STAGE) as scope:
        try:
            generator(**inputs, config={"seed": seed, "temperature": spec.generate.temperature,
                              "max_tokens": spec.generate.max_tokens})
        except dspy.utils.exceptions.AdapterParseError as exc:
            # The raw reply is in the store; salvage its items one by one below.
            parse_error = str(exc).splitlines()[0]
    if not scope.call_ids:
        raise RuntimeError("the generator made no LM call")
    call_id = scope.call_ids[-1]
    text, finish_reason = scope.last_reply or (None, None)
    # A batch yields at most the `count` it asked for, so `--limit` and `per_call` hold even when a
    # model writes more (DSPy drops maxItems from the schema it sends); the whole reply, extras
    # included, stays in the stored call.
    items = reply_items(parse_items(text or "", schema)[:task.count], text, finish_reason, parse_error)
    store.finish_task(key=task.key, stage=STAGE, topic=task.topic, round=task.round, call_id=call_id,
                      items=items, model=lm.model, temperature=spec.generate.temperature)
    return len(items)


CUT_REPLY = "reply truncated at max_tokens: "


def reply_items(items: list[dict[str, Any]], text: str | None, finish_reason: str | None,
                parse_error: str | None) -> list[dict[str, Any]]:
    """The items to store from one reply: one unparsed item when none parsed, and the item a reply
    cut at max_tokens (finish reason `length`) left unfinished says so, so raising max_tokens is the fix."""
    if not items:
        items = [{"fields": None, "raw": text, "parse_error": parse_error or "no examples in the reply"}]
    last = items[-1]
    if finish_reason == "length" and last.get("fields") is None:
        # Only the item the cut fell in: the ones before it are complete JSON objects.
        items[-1] = {**last, "parse_error": CUT_REPLY + str(last.get("parse_error"))}
    return items


def parse_items(text: str, schema: TaskSchema) -> list[dict[str, Any]]:
    """The items of an `examples` list in a JSON reply, each parsed on its own.

    A reply cut off mid-list still yields its complete items. An item that is not a JSON object is
    kept with a parse error; schema checks belong to the validate stage.
    """
    start = text.find("[", text.find('"examples"') if '"examples"' in text else 0)
    if start < 0:
        return []
    decoder = json.JSONDecoder()
    items: list[dict[str, Any]] = []
    pos = start + 1
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            items.append({"fields": None, "raw": text[pos:pos + 2000], "parse_error": f"invalid JSON: {exc.msg}"})
            break
        raw = text[pos:end]
        if isinstance(value, dict):
            items.append({"fields": value, "raw": raw})
        else:
            items.append({"fields": None, "raw": raw, "parse_error": "item is not a JSON object"})
        pos = end
    return items

