"""Program of thought: the verifier writes arithmetic, synthboot computes the number.

A small local model cannot do multi-step arithmetic in its head (BENCHMARKS.md: SmolLM2 and
Qwen2.5-Coder-1.5B re-answer 0-2 of 12 GSM8K problems right when asked for the number), but a code
model writes the arithmetic well. With `verify.module: pot`, each int/float field the verify stage
checks is predicted by asking `verify.lm` for a short Python program that computes it from the
input fields; `synthboot.arithmetic` evaluates the program (arithmetic only, bounded, no Python
run) and the number is compared with the generated one as usual. Other checked fields keep the
plain prediction.

DSPy's own `dspy.ProgramOfThought` runs its code in a Deno + Pyodide sandbox that is not installed
here (and loads Pyodide from a package registry on first use), and it makes at least two LM calls
per answer (code, then the answer read from the code's output); this is one call per field and
needs nothing beyond Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dspy

from synthboot.arithmetic import ProgramError, evaluate, strip_fences
from synthboot.schema import TaskSchema
from synthboot.spec import Spec

NUMERIC_KINDS = ("int", "float")
POT_VERSION = 2  # part of the verify settings hash: bump when the prompt or the evaluator changes verdicts
INSTRUCTIONS = """{task}

Write a short Python program that computes `{field}` ({description}) for the given input. First
assign each number the input gives to a variable named after what it counts, then compute each
intermediate quantity on its own line, then assign the final value to `answer`. Use only numbers,
+ - * / // % **, parentheses and abs, round, min, max, int, floor, ceil. No imports, strings,
loops, functions or print. For example, for the word problem "Tom has 3 boxes of 12 pencils and gives away 10
pencils. How many pencils does he have left?":

boxes = 3
pencils_per_box = 12
given_away = 10
pencils = boxes * pencils_per_box
answer = pencils - given_away"""


def numeric_fields(schema: TaskSchema, fields: list[str]) -> list[str]:
    return [f for f in fields if schema.kind(f) in NUMERIC_KINDS]


@dataclass
class Computed:
    """One field's program and what it computed (`value` None when it did not run)."""

    program: str | None
    value: int | float | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "value": self.value, **({"error": self.error} if self.error else {})}


def program_signature(spec: Spec, schema: TaskSchema, field: str) -> type[dspy.Signature]:
    """`inputs -> program: str`, with the task and the field's description as instructions."""
    described: dict[str, Any] = {}
    for name in schema.inputs:
        info = schema.model.model_fields.get(name)
        described[name] = (str, dspy.InputField(desc=(info.description if info else None) or ""))
    described["program"] = (str, dspy.OutputField(desc=f"Python arithmetic that assigns `answer` = the {field}"))
    info = schema.model.model_fields.get(field)
    text = INSTRUCTIONS.format(task=spec.task.strip(), field=field,
                               description=(info.description if info else None) or f"the {field}")
    return dspy.make_signature(described, text)


class ProgramOfThought:
    """Predicts numeric fields by having the LM write a program and evaluating it here."""

    def __init__(self, spec: Spec, schema: TaskSchema, fields: list[str]):
        self.fields = fields
        self.predictors = {f: dspy.Predict(program_signature(spec, schema, f)) for f in fields}

    def compute(self, inputs: dict[str, Any], config: dict[str, Any]) -> dict[str, Computed]:
        """One LM call per field (under the caller's dspy context); a program that fails is kept with its error."""
        out: dict[str, Computed] = {}
        for field, predictor in self.predictors.items():
            program = str(predictor(**{k: str(v) for k, v in inputs.items()}, config=config).program)
            try:
                value = evaluate(program)
            except ProgramError as exc:
                out[field] = Computed(strip_fences(program), None, str(exc))
                continue
            if isinstance(value, float) and abs(value - round(value)) <= 1e-9 * max(1.0, abs(value)):
                value = int(round(value))  # 26.0 from `/` (or 25.999999999 from 0.1s) is the whole number 26
            out[field] = Computed(strip_fences(program), value)
        return out
