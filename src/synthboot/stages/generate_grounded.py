"""Generate from documents: one call per chunk (or a few neighbouring chunks), examples grounded in it.

The pipeline uses this path instead of `generate` when the spec has `sources:`. Each task is a
chunk, or for a `reasoning` question the chunk and its next `hops - 1` neighbours in the same
document, keyed by the chunks' hashes: an unchanged chunk keeps its key, so a re-run after a
document changed generates only for the chunks that changed (the others are done tasks, and
their calls are in the store). The context field of every example is the chunk text itself,
filled here, never written by the LM, so it cannot drift from the source.

A chunk's question type is drawn from the spec's target mix by its hash: stable across runs,
independent of the other chunks, and on the target mix over many chunks.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import dspy
from pydantic import create_model

from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.schema import TaskSchema, all_seeds
from synthboot.sources import GroundedFields, grounded_fields
from synthboot.spec import Spec
from synthboot.stages.generate import GenerateResult, TaskGuard, parse_items, reply_items, run_task_waves
from synthboot.store import Chunk, Store

STAGE = "generate"

TYPE_INSTRUCTIONS = {
    "factual": "Each question asks for one fact stated in the context, in your own words (do not copy a sentence "
               "of the context); its answer states that fact as the context gives it.",
    "reasoning": "Each question needs two or more facts from different parts of the context combined; its answer "
                 "combines them, using only what the context says.",
    "unanswerable": "Each question is on the context's subject but the context does NOT answer it; its answer is "
                    "exactly: {marker}",
}


@dataclass(frozen=True)
class GroundedTask:
    key: str
    document: str
    chunks: tuple[Chunk, ...]  # in hop order
    question_type: str
    count: int
    round: int = 0

    @property
    def context(self) -> str:
        return "\n\n".join(c.text for c in self.chunks)


def question_type_of(chunk_hash: str, mix: Mapping[Any, float]) -> str:
    """The chunk's question type: a draw from the target mix, seeded by the chunk's hash."""
    total = sum(mix.values())
    u = int(chunk_hash[:8], 16) / 0x100000000 * total
    cumulative = 0.0
    for name, share in mix.items():
        cumulative += share
        if u < cumulative:
            return name
    return next(n for n, share in reversed(list(mix.items())) if share > 0)


def plan_grounded_tasks(spec: Spec, chunks: list[Chunk], *, limit: int | None = None,
                        round: int = 0) -> list[GroundedTask]:
    """One task per chunk, round-robin over documents so any prefix (`--limit`) covers them evenly."""
    s = spec.sources
    assert s is not None
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.document, []).append(chunk)
    per_doc: list[list[GroundedTask]] = []
    for document, members in by_doc.items():
        tasks = []
        for i, chunk in enumerate(members):
            qtype = question_type_of(chunk.hash, s.question_types)
            group = members[i:i + s.hops] if qtype == "reasoning" else [chunk]
            if qtype == "reasoning" and len(group) < 2:
                qtype, group = "factual", [chunk]  # the last chunk of a document has no neighbour
            digest = hashlib.sha256("+".join(c.hash for c in group).encode()).hexdigest()[:16]
            tasks.append(GroundedTask(f"src:r{round}:{qtype}:{digest}", document, tuple(group), qtype,
                                      s.per_chunk, round))
        per_doc.append(tasks)
    ordered = [t for row in zip_longest(*per_doc) for t in row if t is not None]
    if limit is None:
        return ordered
    out, asked = [], 0
    for task in ordered:
        if asked >= limit:
            break
        count = min(task.count, limit - asked)
        out.append(task if count == task.count else GroundedTask(task.key, task.document, task.chunks,
                                                                  task.question_type, count, task.round))
        asked += count
    return out


class GenerateGroundedExamples(dspy.Signature):
    """Write new examples for the task below, grounded in the context: every answer must be stated in,
    or follow directly from, the context, and nothing else. Match the seed examples' format and style."""

    task: str = dspy.InputField(desc="What the examples are for")
    context: str = dspy.InputField(desc="The source text the examples are about")
    question_type: str = dspy.InputField(desc="The kind of question to write")
    seed_examples: str = dspy.InputField(desc="Existing examples to match in style (JSON)")
    count: int = dspy.InputField(desc="How many new examples to write")


def make_grounded_generator(schema: TaskSchema, spec: Spec, fields: GroundedFields) -> dspy.Module:
    """`task, context, question_type, seed_examples, count -> examples`, items without the context field."""
    bounded = schema.bounded_model(spec.generate.max_string_length)
    left_out = {fields.context, fields.question_type}
    kept: dict[str, Any] = {n: (f.annotation, f) for n, f in bounded.model_fields.items() if n not in left_out}
    item = create_model(f"{bounded.__name__}Grounded", __config__=bounded.model_config, **kept)
    names = [n for n in schema.names if n not in left_out]
    sig = GenerateGroundedExamples.append(
        "examples", dspy.OutputField(desc=f"A JSON list of exactly `count` new examples with fields: {', '.join(names)}"),
        list[item])
    if spec.generate.instructions:
        sig = sig.with_instructions(spec.generate.instructions)
    return dspy.ChainOfThought(sig) if spec.generate.module == "cot" else dspy.Predict(sig)


def planned_prompts(spec: Spec, *, limit: int | None = None) -> tuple[list[GroundedTask], type[dspy.Signature],
                                                                   list[dict]]:
    """The tasks a run would plan now, the generator's signature and each call's inputs (for `estimate`)."""
    from synthboot.sources import load_chunks

    assert spec.sources is not None
    schema = TaskSchema.from_spec(spec)
    fields = grounded_fields(spec, schema)
    tasks = plan_grounded_tasks(spec, load_chunks(spec), limit=limit)
    signature = make_grounded_generator(schema, spec, fields).predictors()[0].signature
    seeds = _seeds_json(spec, fields)
    return tasks, signature, [_inputs(spec, t, seeds) for t in tasks]


def _seeds_json(spec: Spec, fields: GroundedFields) -> str:
    # Seeds keep their own context: a small model learns "answer from the context" from a worked example.
    return json.dumps([{k: v for k, v in seed.items() if k != fields.question_type} for seed in all_seeds(spec)],
                      indent=1, ensure_ascii=False)


def _inputs(spec: Spec, task: GroundedTask, seeds_json: str) -> dict:
    assert spec.sources is not None
    instructions = TYPE_INSTRUCTIONS[task.question_type].format(marker=spec.sources.unanswerable_answer)
    return {"task": spec.task, "context": task.context, "question_type": f"{task.question_type}: {instructions}",
            "seed_examples": seeds_json, "count": task.count}


def run_generate_grounded(store: Store, spec: Spec, lm: dspy.LM, tasks: list[GroundedTask], *,
                          concurrency: int = 1, on_progress: Callable[[int, int], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> GenerateResult:
    """Run the tasks not yet done; store each one's candidates as it completes (topic: its document)."""
    schema = TaskSchema.from_spec(spec)
    fields = grounded_fields(spec, schema)
    generator = make_grounded_generator(schema, spec, fields)
    seeds_json = _seeds_json(spec, fields)
    store.link_task_chunks((t.key, [c.hash for c in t.chunks], t.question_type) for t in tasks)
    done = store.done_tasks(STAGE)
    todo = [t for t in tasks if t.key not in done]
    result = GenerateResult(tasks_total=len(tasks), tasks_skipped=len(tasks) - len(todo))
    guard = TaskGuard(lm.model, should_stop)

    def one(task: GroundedTask) -> int | None:
        return guard.run(lambda: _run_task(store, spec, fields, generator, lm, seeds_json, task))

    run_task_waves(store, result, lm, [[(task, functools.partial(one, task)) for task in todo]],
                   concurrency=concurrency, thread_name="generate-grounded", topic_of=lambda task: task.document,
                   total=len(tasks), on_progress=on_progress)
    guard.raise_if_tripped(spec.generate.api_base)
    return result


def _run_task(store: Store, spec: Spec, fields: GroundedFields, generator: dspy.Module, lm: dspy.LM,
              seeds_json: str, task: GroundedTask) -> int:
    assert spec.sources is not None
    seed = int.from_bytes(hashlib.sha256(task.key.encode()).digest()[:4], "big")
    parse_error = None
    context = task.context
    with dspy.context(lm=lm, adapter=JSON_ADAPTER), call_scope(STAGE) as scope:
        try:
            generator(**_inputs(spec, task, seeds_json),
                      config={"seed": seed, "temperature": spec.generate.temperature,
                              "max_tokens": spec.generate.max_tokens})
        except dspy.utils.exceptions.AdapterParseError as exc:
            parse_error = str(exc).splitlines()[0]  # the raw reply is stored; its items are salvaged below
    if not scope.call_ids:
        raise RuntimeError("the generator made no LM call")
    text, finish_reason = scope.last_reply or (None, None)
    items = parse_items(text or "", TaskSchema.from_spec(spec))[:task.count]
    for item in items:
        if item.get("fields") is not None:
            item["fields"] = grounded_item(item["fields"], fields, context, task.question_type)
    items = reply_items(items, text, finish_reason, parse_error)
    store.finish_task(key=task.key, stage=STAGE, topic=task.document, round=task.round, call_id=scope.call_ids[-1],
                      items=items, model=lm.model, temperature=spec.generate.temperature)
    return len(items)


def grounded_item(generated: dict, fields: GroundedFields, context: str, question_type: str) -> dict:
    """The example as stored: the chunk text as its context (whatever the LM wrote there), the LM's fields."""
    item = {fields.context: context, **{k: v for k, v in generated.items() if k != fields.context}}
    if fields.question_type:
        item[fields.question_type] = question_type
    return item
