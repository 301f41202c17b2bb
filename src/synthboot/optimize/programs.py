"""The program to optimize and DSPy's optimizers, built from command-line style settings.

A program is a DSPy signature string (`"question -> answer"`, wrapped in `dspy.ChainOfThought`
or `dspy.Predict`) or `module:attribute` naming a `dspy.Module` (an instance, or a class built with
no arguments). Untyped names in a signature string take the task schema's type and description,
so an enum field of the spec becomes a `Literal` the adapter can enforce.

Optimizers are DSPy's own classes; their settings pass straight through. A setting named like a
parameter of the optimizer's `compile()` goes there, every other one to its constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy

from synthboot.errors import SynthbootError
from synthboot.schema import TaskSchema, import_object

OPTIMIZERS: dict[str, str] = {
    "bootstrap": "BootstrapFewShot",
    "random_search": "BootstrapFewShotWithRandomSearch",
    "mipro": "MIPROv2",
    "gepa": "GEPA",
}


@dataclass
class Program:
    module: dspy.Module
    inputs: list[str]     # the example fields the program is called with
    outputs: list[str]    # the fields it produces that metrics compare


def load_program(ref: str | None, schema: TaskSchema, module: str = "cot") -> Program:
    """The program named by `ref` (default: the task's inputs -> its outputs)."""
    if module not in ("cot", "predict"):
        raise SynthbootError(f"unknown --module {module!r}; choose predict or cot")
    if ref is None:
        ref = f"{', '.join(schema.inputs)} -> {', '.join(schema.outputs)}"
    if "->" in ref:
        try:
            sig = dspy.Signature(ref)
        except Exception as exc:  # DSPy raises ValueError/SyntaxError for malformed strings
            raise SynthbootError(f"--program {ref!r} is not a DSPy signature: {exc}") from None
        for name in sig.input_fields:
            if name not in schema.names:
                raise SynthbootError(f"--program input {name!r} is not a field of the task "
                                     f"(fields: {', '.join(schema.names)})")
        if ":" not in ref:
            for name in [*sig.input_fields, *sig.output_fields]:
                info = schema.model.model_fields.get(name)
                if info is not None:
                    sig = sig.with_updated_fields(name, type_=info.annotation, desc=info.description or "")
        program = dspy.ChainOfThought(sig) if module == "cot" else dspy.Predict(sig)
        return Program(program, list(sig.input_fields), list(sig.output_fields))
    obj = import_object(ref, what="program", field="--program")
    if isinstance(obj, type) and issubclass(obj, dspy.Module):
        obj = obj()
    if not isinstance(obj, dspy.Module):
        raise SynthbootError(f"--program {ref!r} is not a dspy.Module")
    outputs: list[str] = []
    for predictor in obj.predictors():
        outputs += [f for f in predictor.signature.output_fields if f != "reasoning" and f not in outputs]
    compared = [f for f in outputs if f in schema.names] or schema.outputs
    return Program(obj.deepcopy(), list(schema.inputs), compared)


def make_optimizer(name: str, metric: Callable, settings: dict[str, Any], *, num_threads: int,
                   reflection_lm: dspy.LM | None, task_lm: dspy.LM | None = None) -> tuple[Any, dict[str, Any]]:
    """DSPy's optimizer `name` and the extra keyword arguments for its `compile()`.

    `task_lm` runs the program (the student); `reflection_lm` (`--judge-lm`) is GEPA's reflection
    model and MIPROv2's prompt model, which MIPROv2 otherwise takes to be the student too.
    """
    if name not in OPTIMIZERS:
        raise SynthbootError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    metric = no_placeholder_demos(metric)
    cls = getattr(dspy, OPTIMIZERS[name])
    init_params = inspect.signature(cls.__init__).parameters
    compile_params = inspect.signature(cls.compile).parameters
    init: dict[str, Any] = {}
    compile_kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ("student", "trainset", "valset", "teacher", "metric"):
            raise SynthbootError(f"--set {key}: synthboot passes {key} itself")
        if key in compile_params:
            compile_kwargs[key] = value
        elif key in init_params:
            init[key] = value
        else:
            known = sorted(p for p in {*init_params, *compile_params} if p not in ("self", "kwargs"))
            raise SynthbootError(f"{OPTIMIZERS[name]} has no setting {key!r}; known: {', '.join(known)}")
    if "num_threads" in init_params:
        init.setdefault("num_threads", num_threads)
    if name == "mipro":
        # "light" unless the user sized the search themselves (MIPROv2 refuses both at once).
        explicit = "num_candidates" in init or "num_trials" in compile_kwargs
        init.setdefault("auto", None if explicit else "light")
        # MIPROv2 reads both models when it is built, not when it compiles: without them it
        # wants a global dspy.configure(lm=...), which synthboot never sets.
        if task_lm is not None:
            init.setdefault("task_model", task_lm)
            init.setdefault("prompt_model", reflection_lm or task_lm)
    if name == "gepa":
        # GEPA passes a trace while it scores candidates and wants a number back, not pass/fail.
        metric = _numeric(metric)
        if not {"max_metric_calls", "max_full_evals", "auto"} & init.keys():
            init["auto"] = "light"
        if reflection_lm is None:
            raise SynthbootError("gepa needs a reflection LM (--judge-lm)")
        init.setdefault("reflection_lm", reflection_lm)
    try:
        return cls(metric=metric, **init), compile_kwargs
    except (TypeError, ValueError, AssertionError) as exc:
        raise SynthbootError(f"cannot build {OPTIMIZERS[name]}: {exc}") from None


def takes_valset(optimizer: Any) -> bool:
    return "valset" in inspect.signature(optimizer.compile).parameters


# DSPy fills a labelled demo's missing fields (a train example has no `reasoning`) with this text;
# a small student copies it into the traces it is bootstrapped on (Qwen-1.5B on GSM8K: 4 of 6).
DSPY_PLACEHOLDER = "Not supplied for this particular example"


def no_placeholder_demos(metric: Callable) -> Callable:
    """`metric`, failing a bootstrapped trace in which any output repeats DSPy's placeholder text.

    Such a trace would become a demo that teaches the student to write the placeholder instead of
    reasoning. Scoring without a trace (evaluation) is unchanged.
    """
    if getattr(metric, "gives_feedback", False):
        return metric  # GEPA's five-argument metrics score candidates, not demos

    def metric_without_placeholders(gold, pred, trace=None, *args, **kwargs):
        if trace:
            for _predictor, _inputs, outputs in trace:
                values = outputs.values() if hasattr(outputs, "values") else ()
                if any(isinstance(v, str) and DSPY_PLACEHOLDER in v for v in values):
                    return False
        return metric(gold, pred, trace, *args, **kwargs)

    metric_without_placeholders.__name__ = getattr(metric, "__name__", "metric")
    return metric_without_placeholders


def _numeric(metric: Callable) -> Callable:
    from synthboot.optimize.metrics import as_float

    if getattr(metric, "gives_feedback", False):
        return metric  # a user's five-argument GEPA metric: its feedback is the point

    def scored(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return as_float(metric(gold, pred, None))

    scored.__name__ = getattr(metric, "__name__", "metric")
    return scored


def parse_settings(pairs: list[str], auto: str | None = None) -> dict[str, Any]:
    """`KEY=VALUE` pairs (values read as JSON when they parse, else as text) -> optimizer settings."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SynthbootError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    if auto is not None:
        if auto not in ("light", "medium", "heavy"):
            raise SynthbootError(f"--auto must be light, medium or heavy, not {auto!r}")
        out["auto"] = auto
    return out
