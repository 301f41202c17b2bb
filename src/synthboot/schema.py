"""The task's fields -> a pydantic model, a bounded JSON schema, and `dspy.Example`s.

A task is described either by `fields:` in the spec or by an existing pydantic model named as
`package.module:Class`. Both end up as one `TaskSchema`, which every stage uses.
"""

from __future__ import annotations

import enum
import importlib
import re
import sys
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

from synthboot.errors import SpecError, SynthbootError
from synthboot.spec import FieldSpec, Spec

_PY_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list[str]}


def import_object(ref: str, *, what: str, field: str, search: str | Path | None = None) -> Any:
    """Import `package.module:attribute`; a bad path is a SpecError naming `field`.

    `search` (the spec's folder) is searched before `sys.path`, so a rule module next to the spec
    imports with no PYTHONPATH.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr or not re.fullmatch(r"[\w.]+", module_name + "." + attr):
        raise SpecError(f"expected `package.module:{what}`, got {ref!r}", field=field)
    try:
        with _searched_first(search):
            obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import module {module_name!r}: {exc}", field=field) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say so, in one line
        raise SpecError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}", field=field) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"module {module_name!r} has no attribute {attr!r}", field=field)
        obj = getattr(obj, part)
    return obj


@contextmanager
def _searched_first(folder: str | Path | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    entry = str(Path(folder).resolve())
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(entry)


@dataclass(frozen=True)
class TaskSchema:
    """The shape of one example of the task."""

    model: type[BaseModel]
    inputs: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: Spec) -> TaskSchema:
        if spec.schema_ref:
            model = import_object(spec.schema_ref, what="PydanticModel", field="schema", search=spec.base_dir)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise SpecError(f"{spec.schema_ref!r} is not a pydantic model class", field="schema")
            names = list(model.model_fields)
            declared_inputs: list[str] = []
        else:
            assert spec.fields is not None
            model = _model_from_fields(spec.name, spec.fields)
            names = list(spec.fields)
            declared_inputs = [name for name, f in spec.fields.items() if f.input]
        inputs = spec.inputs if spec.inputs is not None else declared_inputs
        for i, name in enumerate(inputs):
            if name not in names:
                raise SpecError(f"{name!r} is not a field of the task (fields: {', '.join(names)})",
                                field=f"inputs[{i}]")
        if not inputs:
            raise SpecError("no input field: mark at least one field `input: true` or list `inputs:`",
                            field="inputs" if spec.inputs is not None else "fields")
        if set(inputs) == set(names):
            raise SpecError("every field is an input: leave at least one output field", field="inputs")
        return cls(model=model, inputs=tuple(inputs))

    @property
    def names(self) -> list[str]:
        return list(self.model.model_fields)

    @property
    def outputs(self) -> list[str]:
        return [n for n in self.names if n not in self.inputs]

    def enum_fields(self) -> dict[str, list[str]]:
        """Fields with a closed set of values (Literal or Enum), name -> values."""
        out = {}
        for name, info in self.model.model_fields.items():
            values = _closed_values(info.annotation)
            if values:
                out[name] = values
        return out

    def kind(self, name: str) -> str:
        """'enum', 'bool', 'int', 'float', 'str', 'list' (of strings) or 'other': how values compare."""
        annotation = self.model.model_fields[name].annotation
        if _closed_values(annotation):
            return "enum"
        for kind, py in (("bool", bool), ("int", int), ("float", float), ("str", str)):
            if annotation is py:
                return kind
        if typing.get_origin(annotation) in (list, tuple, set):
            return "list"
        return "other"

    def strata_fields(self) -> list[str]:
        """Fields with few distinct values, that splits can be stratified on: enums and booleans."""
        return [n for n, info in self.model.model_fields.items()
                if n in self.enum_fields() or info.annotation is bool]

    def description(self, name: str) -> str:
        return self.model.model_fields[name].description or ""

    def validate_item(self, item: Any) -> BaseModel:
        """The item as a model instance; raises pydantic.ValidationError."""
        return self.model.model_validate(item)

    def json_schema(self, max_string_length: int = 400) -> dict[str, Any]:
        """The model's JSON schema with every string bounded (see GenerateSpec.max_string_length)."""
        return bound_strings(self.model.model_json_schema(), max_string_length)

    def bounded_model(self, max_string_length: int = 400) -> type[BaseModel]:
        """A copy of the model whose unbounded strings get `max_length`, for constrained generation."""
        fields: dict[str, Any] = {}
        for name, info in self.model.model_fields.items():
            bounded = any(getattr(m, "max_length", None) for m in info.metadata)
            annotation = info.annotation
            if annotation is str and not bounded:
                annotation = Annotated[str, annotated_types.MaxLen(max_string_length)]
            fields[name] = (annotation, info)
        return create_model(self.model.__name__, __config__=ConfigDict(extra="forbid", regex_engine="python-re"),
                            **fields)

    def check_spec(self, spec: Spec) -> None:
        """Cross-field checks of the spec against the task's fields."""
        names = self.names
        if not spec.seeds and not spec.seeds_file and spec.sources is None:
            raise SpecError("no seed examples: give a few (3-5) in `seeds` or a `seeds_file`", field="seeds")
        if spec.seeds_file and not spec.seeds and not read_seeds_file(spec):
            raise SpecError("the seeds file holds no examples", field="seeds_file")
        for i, seed in enumerate(spec.seeds):
            self._check_seed(seed, f"seeds[{i}]")
        if spec.seeds_file:
            for i, seed in enumerate(read_seeds_file(spec)):
                self._check_seed(seed, f"seeds_file[{i}]")
        for i, rule in enumerate(spec.rules):
            for f in [rule.field, *(rule.fields or [])]:
                if f is not None and f not in names:
                    raise SpecError(f"{f!r} is not a field of the task", field=f"rules[{i}].field")
        for i, f in enumerate(spec.dedup.fields or []):
            if f not in names:
                raise SpecError(f"{f!r} is not a field of the task", field=f"dedup.fields[{i}]")
        for layer in ("exact", "word_overlap", "minhash", "semantic"):
            for i, f in enumerate(getattr(spec.dedup, layer).fields or []):
                if f not in names:
                    raise SpecError(f"{f!r} is not a field of the task", field=f"dedup.{layer}.fields[{i}]")
        if spec.split.stratify and spec.split.stratify not in names + ["topic"]:
            raise SpecError(f"{spec.split.stratify!r} is not a field of the task", field="split.stratify")
        for i, f in enumerate(spec.verify.fields or []):
            if f not in self.outputs:
                raise SpecError(f"{f!r} is not an output field of the task (outputs: {', '.join(self.outputs)})",
                                field=f"verify.fields[{i}]")
        for f in spec.verify.per_field:
            if f not in self.outputs:
                raise SpecError(f"{f!r} is not an output field of the task", field=f"verify.per_field.{f}")
        if spec.split.stratify and spec.split.stratify != "topic" and spec.split.stratify not in self.strata_fields():
            # Every free-text value is its own stratum of one: the splits would come out empty.
            choices = ", ".join(["topic", *self.strata_fields()])
            raise SpecError(f"{spec.split.stratify!r} is a free-text field; stratify on one of: {choices}",
                            field="split.stratify")
        if spec.diversity.field and spec.diversity.field not in self.enum_fields():
            raise SpecError(f"{spec.diversity.field!r} is not an enum field of the task", field="diversity.field")

    def _check_seed(self, seed: Any, where: str) -> None:
        try:
            self.validate_item(seed)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise SpecError(f"seed does not fit the task schema: {err['msg']}",
                            field=f"{where}.{loc}" if loc else where) from None

    def to_example(self, fields: dict[str, Any], **extra: Any):
        import dspy

        return dspy.Example(**fields, **extra).with_inputs(*self.inputs)


def read_seeds_file(spec: Spec) -> list[dict[str, Any]]:
    if not spec.seeds_file:
        return []
    from synthboot.jsonl import read_jsonl

    try:
        return read_jsonl(Path(spec.base_dir) / spec.seeds_file)
    except SpecError:
        raise
    except SynthbootError as exc:
        raise SpecError(str(exc), field="seeds_file") from None


def all_seeds(spec: Spec) -> list[dict[str, Any]]:
    return [*spec.seeds, *read_seeds_file(spec)]


def bound_strings(schema: dict[str, Any], max_length: int) -> dict[str, Any]:
    """Give every string without a maxLength one, and every array without maxItems a bound."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: walk(v) for k, v in node.items()}
            if node.get("type") == "string" and "enum" not in node and "maxLength" not in node:
                node["maxLength"] = max_length
            if node.get("type") == "array" and "maxItems" not in node:
                node["maxItems"] = 20
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(schema)


def _closed_values(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    return None


def _model_from_fields(name: str, fields: dict[str, FieldSpec]) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for fname, f in fields.items():
        annotation: Any = Literal[tuple(f.values or ())] if f.type == "enum" else _PY_TYPES[f.type]
        constraints: dict[str, Any] = {}
        if f.type in ("str", "list[str]"):
            constraints = {"min_length": f.min_length, "max_length": f.max_length}
        if f.type == "str" and f.pattern:
            constraints["pattern"] = f.pattern
        if f.type in ("int", "float"):
            constraints = {"ge": f.minimum, "le": f.maximum}
        constraints = {k: v for k, v in constraints.items() if v is not None}
        description = f.description
        if f.meanings:  # the verifier and the optimized program read what each label means
            glossary = "; ".join(f"{v}: {m}" for v, m in f.meanings.items())
            description = f"{description} ({glossary})" if description else glossary
        definitions[fname] = (annotation, Field(..., description=description or None, **constraints))
    model_name = re.sub(r"\W", "", name.title()) or "Task"
    # Extra keys an LM adds are dropped, not fatal: the fields asked for may still be good. Patterns
    # run on Python's `re`, the engine the spec loader compiles them with (pydantic's default Rust
    # engine refuses lookarounds and backreferences, as an internal error).
    return create_model(f"{model_name}Example", __config__=ConfigDict(extra="ignore", regex_engine="python-re"),
                        **definitions)
