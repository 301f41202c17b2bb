"""The task a spec describes, built once: its example schema, its compiled rules, the fields compared.

Stages, readers and the CLI ask `Task.of(spec)` instead of rebuilding the schema (a pydantic model
made at run time) and re-importing custom rules each time. Built tasks are kept per spec content,
so a changed spec (a `model_copy` with another setting) gets its own task, never a stale one.
The dedup layers and the generator's signature stay with their stages (synthboot.stages.dedup,
synthboot.stages.generate), which sit above this module.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from synthboot.rules import compile_rules
from synthboot.schema import TaskSchema
from synthboot.spec import RuleSpec, Spec

_KEEP = 32  # tasks kept (a process sees a handful of specs)
_built: OrderedDict[str, Task] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class Task:
    spec: Spec
    schema: TaskSchema

    @classmethod
    def of(cls, spec: Spec) -> Task:
        """The spec's task, built on first use; a bad schema raises its `SpecError` each time."""
        key = spec.model_dump_json()
        with _lock:
            if (task := _built.get(key)) is not None:
                _built.move_to_end(key)
                return task
        schema = TaskSchema.from_spec(spec)
        task = cls(spec, schema)
        with _lock:
            _built[key] = task
            while len(_built) > _KEEP:
                _built.popitem(last=False)
        return task

    @cached_property
    def rules(self) -> list[tuple[RuleSpec, Callable[..., str | None]]]:
        """The rules, compiled when first needed (custom ones import their module: only validate needs them)."""
        return compile_rules(self.spec.rules, self.schema, self.spec.base_dir)  # custom rules beside the spec

    @property
    def compared_fields(self) -> list[str]:
        """The fields dedup and the leakage groups compare unless a layer names its own."""
        return self.spec.dedup.fields or list(self.schema.inputs)
