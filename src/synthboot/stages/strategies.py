"""How a generation batch asks for examples: the `generate.strategy` setting.

- `few_shot`: every seed shown as an example to match (the seed tutorial's prompt). A small model
  copies them (issue 11: 67% verbatim copies on SmolLM2).
- `conditioned`: no seed shown; each batch asks for one target cell (its topic x one value of every
  enum field, the values spread by the spec's diversity targets) and the output grammar pins the
  enum values, so the model is told what to make instead of shown what exists.
- `style_seeds`: the cell request plus a rotating window of seeds, labelled as style only, and the
  examples already generated for the same topic (earlier waves) listed as things not to repeat.
- `subtopics`: like `conditioned`, over subtopics the LM proposes from the task and the seeds when
  the spec lists no topics (`synthboot.stages.subtopics`); listed topics win.
- `mutate`: evol-style: rewrite a seed (first wave) or an example generated in an earlier wave into
  a new one on the batch's topic, with one change (another subject, an added constraint, another
  value of an enum field).

Everything a prompt holds comes from the spec and from candidates of earlier waves, which are in
the run store: a resumed run builds the same prompts, so the store answers them at no cost.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import annotated_types

import dspy
from pydantic import ConfigDict, create_model
from pydantic.fields import FieldInfo

from synthboot.schema import TaskSchema, all_seeds
from synthboot.spec import Spec
from synthboot.store import Candidate

STRATEGIES = ("few_shot", "conditioned", "style_seeds", "subtopics", "mutate")
# Strategies whose prompts read earlier waves' candidates: their batches run wave by wave.
USES_HISTORY = ("style_seeds", "mutate")
MUTATIONS = ("subject", "constraint", "enum")
AVOID_SHOWN = 5  # earlier examples listed as "do not repeat"
STYLE_SEEDS = 2  # seeds shown per batch by `style_seeds` when `seeds_per_call` is unset
TOPIC_FIELD = "topic"

Cell = tuple[tuple[str, str], ...]


class GenerateExamples(dspy.Signature):
    """Generate new examples for the task below, matching the seed examples in format, style and quality.
    Every example must be specific and factually accurate. Vary the examples; do not repeat or
    paraphrase the seed examples."""

    task: str = dspy.InputField(desc="What the examples are for")
    seed_examples: str = dspy.InputField(desc="Existing examples to match in style and quality (JSON)")
    topic: str = dspy.InputField(desc="The topic every new example must be about")
    count: int = dspy.InputField(desc="How many new examples to write")


class GenerateForCell(dspy.Signature):
    """Write new, original examples for the task below. Every example must be about the given topic
    and have exactly the attributes asked for. Every example must be specific and factually
    accurate, and each one must differ from the others in subject and wording."""

    task: str = dspy.InputField(desc="What the examples are for")
    topic: str = dspy.InputField(desc="The topic every new example must be about")
    attributes: str = dspy.InputField(desc="The value every new example must have for these fields")
    count: int = dspy.InputField(desc="How many new examples to write")


class GenerateInStyle(dspy.Signature):
    """Write new examples for the task below. The style examples show only the format, length and
    tone: every new example must be about a different subject than any of them and use different
    wording. Never repeat or paraphrase a style example or an example listed to avoid. Every
    example must be about the given topic, have exactly the attributes asked for, and be specific
    and factually accurate."""

    task: str = dspy.InputField(desc="What the examples are for")
    style_examples: str = dspy.InputField(desc="Examples of the format and tone only; do not reuse their subjects (JSON)")
    avoid: str = dspy.InputField(desc="Examples already written: do not repeat or paraphrase them")
    topic: str = dspy.InputField(desc="The topic every new example must be about")
    attributes: str = dspy.InputField(desc="The value every new example must have for these fields")
    count: int = dspy.InputField(desc="How many new examples to write")


class MutateExample(dspy.Signature):
    """Rewrite the given example into new examples for the task below. Keep its format and quality,
    make each new example about the given topic, and apply the change asked for. The new examples
    must not repeat the original's subject or wording, and must be specific and factually accurate."""

    task: str = dspy.InputField(desc="What the examples are for")
    example: str = dspy.InputField(desc="The example to rewrite (JSON)")
    change: str = dspy.InputField(desc="How the new examples must differ from it")
    topic: str = dspy.InputField(desc="The topic every new example must be about")
    count: int = dspy.InputField(desc="How many new examples to write")


SIGNATURES: dict[str, type[dspy.Signature]] = {
    "few_shot": GenerateExamples, "conditioned": GenerateForCell, "subtopics": GenerateForCell,
    "style_seeds": GenerateInStyle, "mutate": MutateExample}


# -- planning --------------------------------------------------------------------------------------
def cell_fields(spec: Spec, schema: TaskSchema) -> dict[str, list[str]]:
    """The enum fields a cell pins, each with its values in target order (heaviest first)."""
    return dict(schema.enum_fields())


def value_cycle(values: Sequence[str], weights: dict[str, float] | None) -> list[str]:
    """One period of values in proportion to their weights, spread out (smooth weighted round-robin).

    {easy: .3, medium: .4, hard: .3} -> a period of 10 with 3 easy, 4 medium and 3 hard, no value
    twice in a row where avoidable; no weights: each value once.
    """
    if not weights:
        return list(values)
    scale = 10
    w = {v: max(0, round(weights.get(v, 0) * scale)) for v in values}
    if not any(w.values()):
        return list(values)
    total, current, out = sum(w.values()), {v: 0 for v in values}, []
    for _ in range(total):
        for v in values:
            current[v] += w[v]
        best = max(values, key=lambda v: current[v])
        current[best] -= total
        out.append(best)
    return out


def plan_cell(spec: Spec, schema: TaskSchema, topic_index: int, batch: int, topic: str | None = None) -> Cell:
    """The target cell of batch `batch` of the topic at `topic_index`.

    Across topics the first batches follow each field's target mix; within a topic, successive
    batches move on through the values. A second enum field advances once per period of the first,
    so the combinations spread too. A task field named `topic` (an output) is the batch's topic.
    """
    from synthboot.stages.diversity import diversity_field, targets_of

    targets = targets_of(spec, schema)
    main = diversity_field(spec, schema)
    cell: list[tuple[str, str]] = []
    if topic is not None and topic_field_fits(spec, schema, topic):
        cell.append((TOPIC_FIELD, topic))
    step = 1
    for name, values in cell_fields(spec, schema).items():
        cycle = value_cycle(values, targets.get(name) if name == main else None)
        cell.append((name, cycle[(topic_index + batch // step) % len(cycle)]))
        step *= len(values)
    return tuple(cell)


def topic_field_fits(spec: Spec, schema: TaskSchema, topic: str) -> bool:
    """Whether the task has an output field `topic` of type str that accepts this topic."""
    if TOPIC_FIELD not in schema.outputs or schema.model.model_fields[TOPIC_FIELD].annotation is not str:
        return False
    seeds = all_seeds(spec)
    try:
        schema.validate_item({**(seeds[0] if seeds else {}), TOPIC_FIELD: topic})
    except Exception:  # noqa: BLE001 - too long, wrong pattern: leave the field to the model
        return False
    return True


def mutation_of(spec: Spec, schema: TaskSchema, topic_index: int, batch: int) -> str:
    ops = [m for m in MUTATIONS if m != "enum" or cell_fields(spec, schema)]
    return ops[(topic_index + batch) % len(ops)]


# -- prompts ---------------------------------------------------------------------------------------
def item_model(schema: TaskSchema, spec: Spec, cell: Cell) -> type:
    """The output item's model, which the local engine turns into the output grammar.

    The task's bounded model, with each cell field pinned to its value, and the spec's
    `min_length` rules as minimum lengths: what the filters would reject is not generated (on
    SmolLM2, 5 of 15 answers were shorter than the example spec's 20 characters).
    """
    bounded = schema.bounded_model(spec.generate.max_string_length)
    pinned = dict(cell)
    minimums = {r.field: int(r.value) for r in spec.rules
                if r.check == "min_length" and r.field and r.value and r.field not in pinned}
    if not pinned and not minimums:
        return bounded
    fields: dict[str, Any] = {}
    # Pinned fields come first in the output, so the model writes the rest after the value it was
    # asked for (a label emitted last is forced onto text written without it).
    order = sorted(bounded.model_fields, key=lambda name: name not in pinned)
    for name in order:
        info = bounded.model_fields[name]
        annotation: Any = info.annotation
        if name in pinned:
            annotation = Literal[pinned[name]]
            meaning = spec.meaning(name, pinned[name])
            if meaning:  # only the asked-for value's meaning, not every label's
                info = FieldInfo.merge_field_infos(info, description=meaning)
        elif name in minimums and annotation is str:
            annotation = Annotated[str, annotated_types.MinLen(minimums[name])]
        fields[name] = (annotation, info)
    return create_model(bounded.__name__, __config__=ConfigDict(extra="forbid"), **fields)


def make_module(schema: TaskSchema, spec: Spec, strategy: str, cell: Cell = ()) -> dspy.Module:
    """A DSPy module for the strategy's signature with the output `examples: list[item]`."""
    item = item_model(schema, spec, cell)
    sig = SIGNATURES[strategy].append(
        "examples", dspy.OutputField(desc=f"A JSON list of exactly `count` new examples with fields: "
                                          f"{', '.join(schema.names)}"),
        list[item])  # type: ignore[valid-type]
    if spec.generate.instructions:
        sig = sig.with_instructions(spec.generate.instructions)
    return dspy.ChainOfThought(sig) if spec.generate.module == "cot" else dspy.Predict(sig)


def attributes_text(spec: Spec, schema: TaskSchema, cell: Cell) -> str:
    """One line per pinned field: the value, and what that value means when the spec says."""
    if not cell:
        return "any"
    lines = []
    for name, value in cell:
        desc = spec.meaning(name, value) or schema.description(name)
        lines.append(f"{name} = {value}" + (f" ({desc})" if desc else ""))
    return "\n".join(lines)


def seed_window(seeds: list[dict], start: int, size: int | None) -> list[dict]:
    """`size` seeds from `start`, wrapping: successive batches see successive windows."""
    if not size or size >= len(seeds):
        return list(seeds)
    return [seeds[(start * size + i) % len(seeds)] for i in range(size)]


def input_text(schema: TaskSchema, fields: dict[str, Any]) -> str:
    return " | ".join(str(fields.get(name, "")) for name in schema.inputs)


def avoid_list(schema: TaskSchema, history: list[Candidate], topic: str, cell: Cell) -> str:
    """Earlier waves' examples to avoid: the same cell first, then the same topic; newest first."""
    same_topic = [c for c in reversed(history) if c.fields and c.topic == topic]
    pinned = dict(cell)

    def in_cell(c: Candidate) -> bool:
        return all(str((c.fields or {}).get(k)) == v for k, v in pinned.items())

    chosen = [c for c in same_topic if in_cell(c)] + [c for c in same_topic if not in_cell(c)]
    texts: list[str] = []
    for c in chosen:
        text = input_text(schema, c.fields or {})
        if text.strip() and text not in texts:
            texts.append(text)
        if len(texts) == AVOID_SHOWN:
            break
    return "\n".join(f"- {t}" for t in texts) or "(none yet)"


def mutation_source(seeds: list[dict], history: list[Candidate], schema: TaskSchema, topic: str,
                    slot: int) -> dict:
    """What a mutate batch rewrites: a seed in the first wave, later an earlier wave's valid example."""
    valid: list[tuple[Candidate, dict]] = []
    for c in history:
        try:
            valid.append((c, schema.validate_item(c.fields).model_dump(mode="json")))
        except Exception:  # noqa: BLE001 - an unparsed or invalid earlier example is not a source
            continue
    source = [f for c, f in valid if c.topic == topic] or [f for _, f in valid] or seeds
    return source[slot % len(source)]


def change_text(schema: TaskSchema, op: str, cell: Cell, source: dict) -> str:
    if op == "subject":
        return "Change the subject: ask about a different concept than the original does."
    if op == "constraint":
        return "Add a constraint or a concrete detail that makes the example more specific than the original."
    changes = [f"{k} = {v}" for k, v in cell if str(source.get(k)) != v] or [f"{k} = {v}" for k, v in cell]
    return "Rewrite it so that " + " and ".join(changes) + ", changing the content to fit."


def seeds_shown(seeds: list[dict], task: Any, per_call: int | None) -> str:
    """The seed examples one batch sees, as JSON: all of them, or a window that rotates by task.

    A long seed set makes every prompt long; a window keeps prompts short while every seed is
    still shown across the batches.
    """
    if per_call and per_call < len(seeds):
        start = int.from_bytes(hashlib.sha256(task.key.encode()).digest()[:4], "big") % len(seeds)
        seeds = [seeds[(start + i) % len(seeds)] for i in range(per_call)]
    return json.dumps(seeds, indent=1, ensure_ascii=False)


def prompt_inputs(spec: Spec, schema: TaskSchema, strategy: str, task: Any, seeds: list[dict],
                  history: list[Candidate]) -> dict[str, Any]:
    """The generator's inputs for one batch: a pure function of the spec, the task and earlier waves."""
    text = spec.task + (f"\n\n{task.guidance}" if task.guidance else "")
    cell: Cell = task.cell
    if strategy == "few_shot":
        return {"task": text, "seed_examples": seeds_shown(seeds, task, spec.generate.seeds_per_call),
                "topic": task.topic, "count": task.count}
    if strategy in ("conditioned", "subtopics"):
        return {"task": text, "topic": task.topic, "attributes": attributes_text(spec, schema, cell), "count": task.count}
    if strategy == "style_seeds":
        shown = seed_window(seeds, task.slot, spec.generate.seeds_per_call or STYLE_SEEDS)
        return {"task": text, "style_examples": json.dumps(shown, indent=1, ensure_ascii=False),
                "avoid": avoid_list(schema, history, task.topic, cell), "topic": task.topic,
                "attributes": attributes_text(spec, schema, cell), "count": task.count}
    if strategy == "mutate":
        source = mutation_source(seeds, history, schema, task.topic, task.slot)
        return {"task": text, "example": json.dumps(source, ensure_ascii=False),
                "change": change_text(schema, task.mutation or "subject", cell, source),
                "topic": task.topic, "count": task.count}
    raise ValueError(f"unknown generation strategy {strategy!r}")
