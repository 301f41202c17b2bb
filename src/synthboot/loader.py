"""Reading a spec file: its structure (synthboot.spec, pure data) and then its meaning.

`synthboot.spec` parses the YAML into a `Spec` and checks each setting on its own. The checks
that need the task's schema or the rules (fields that exist, enum values of seeds, a custom rule's
`module:function`) live here, above the schema and the rules, so `spec` imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthboot import spec as _spec
from synthboot.rules import compile_rules
from synthboot.schema import TaskSchema
from synthboot.spec import Spec


def check_spec(spec: Spec) -> None:
    """The semantic checks; a `SpecError` names the field (the parser adds its YAML line)."""
    schema = TaskSchema.from_spec(spec)
    schema.check_spec(spec)
    compile_rules(spec.rules, schema)  # a bad `module:function` fails now, not after generation
    if spec.sources is not None:
        from synthboot.sources import grounded_fields

        grounded_fields(spec, schema)  # the context, question and answer fields exist


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read and validate a YAML spec. Raises `SpecError` naming the field and the line."""
    return _spec.load_spec(path, overrides, check=check_spec)


def parse_spec(text: str, *, source: str = "<spec>", base_dir: str | Path = ".",
               overrides: dict[str, Any] | None = None) -> Spec:
    """A spec from YAML text, checked as `load_spec` checks a file."""
    return _spec.parse_spec(text, source=source, base_dir=base_dir, overrides=overrides, check=check_spec)
