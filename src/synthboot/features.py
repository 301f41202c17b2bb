"""The task's fields as column types for typed exports: Arrow (Parquet) and Hugging Face `Features`.

Types come from the spec, never from the data: an empty split gets the same columns as a full one,
and a column whose values happen to look alike (all whole numbers, say) keeps its declared type.
enum -> `ClassLabel` (HF; a string in Parquet), int -> int64, float -> float64, bool, list[str] ->
a sequence of strings, str -> string.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from synthboot.schema import TaskSchema

Kind = Literal["str", "int", "float", "bool", "list[str]", "enum"]


def field_kinds(schema: TaskSchema) -> dict[str, tuple[Kind, list[str] | None]]:
    """Each field -> (its kind, its values for an enum). Unknown annotations export as strings."""
    enums = schema.enum_fields()
    out: dict[str, tuple[Kind, list[str] | None]] = {}
    for name, info in schema.model.model_fields.items():
        if name in enums:
            out[name] = ("enum", enums[name])
            continue
        annotation = _strip_optional(info.annotation)
        kind: Kind = "str"
        if annotation is bool:
            kind = "bool"
        elif annotation is int:
            kind = "int"
        elif annotation is float:
            kind = "float"
        elif typing.get_origin(annotation) is list:
            kind = "list[str]"
        out[name] = (kind, None)
    return out


def typed_rows(schema: TaskSchema, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with exactly the schema's fields, in its types (the LM's extra keys dropped)."""
    kinds = field_kinds(schema)
    out = []
    for row in rows:
        try:
            clean = schema.validate_item(row).model_dump(mode="json")
        except Exception:  # noqa: BLE001 - a row kept by a reviewer's edit: export it as it is
            clean = dict(row)
        # An enum's values are its labels, as text (a ClassLabel reads an int as an index).
        out.append({name: str(clean[name]) if kind == "enum" and clean.get(name) is not None else clean.get(name)
                    for name, (kind, _) in kinds.items()})
    return out


def arrow_schema(schema: TaskSchema):
    import pyarrow as pa

    types = {"str": pa.string(), "enum": pa.string(), "int": pa.int64(), "float": pa.float64(),
             "bool": pa.bool_(), "list[str]": pa.list_(pa.string())}
    return pa.schema([(name, types[kind]) for name, (kind, _) in field_kinds(schema).items()])


def hf_features(schema: TaskSchema):
    import datasets

    def feature(kind: Kind, values: list[str] | None):
        if kind == "enum":
            return datasets.ClassLabel(names=list(values or []))
        if kind == "list[str]":
            return datasets.Sequence(datasets.Value("string"))
        return datasets.Value({"str": "string", "int": "int64", "float": "float64", "bool": "bool"}[kind])

    return datasets.Features({name: feature(kind, values) for name, (kind, values) in field_kinds(schema).items()})


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation

