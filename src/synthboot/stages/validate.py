"""Validate: parse, then schema, then the named quality rules. Every rejection keeps its reason."""

from __future__ import annotations

from collections.abc import Callable

import pydantic

from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages import StageResult, passed, settings_hash
from synthboot.store import Candidate, Decision, Store
from synthboot.task import Task

STAGE = "validate"


def decide_all(spec: Spec, candidates: list[Candidate]) -> list[Decision]:
    """Each candidate's decision; a pure function of the spec, so it can run anywhere (the Ray engine)."""
    task = Task.of(spec)
    return [_decide(c.id, c.fields, c.parse_error, task.schema, task.rules) for c in candidates]


def run_validate(store: Store, spec: Spec, upstream_hash: str = "", *,
                 decide: Callable[[Spec, list[Candidate]], list[Decision]] = decide_all) -> StageResult:
    task = Task.of(spec)
    schema = task.schema
    task.rules  # compiled now: a bad rule is a SpecError here, before any work
    stage_hash = settings_hash(upstream_hash, STAGE, schema.model.model_json_schema(),
                               [r.model_dump() for r in spec.rules])
    result = StageResult(STAGE, stage_hash)
    existing = store.decisions(STAGE)
    todo = [c for c in passed(store, None, None)
            if (d := existing.get(c.id)) is None or d.settings_hash != stage_hash]
    decisions = decide(spec, todo)
    for decision in decisions:
        result.decided += 1
        if decision.kept:
            result.kept += 1
        else:
            result.rejected[decision.reason] += 1
    store.write_decisions(STAGE, stage_hash, decisions)
    return result


def _decide(cid: int, fields: dict | None, parse_error: str | None, schema: TaskSchema, rules) -> Decision:
    if fields is None:
        return Decision(cid, False, "parse_error", {"error": parse_error or "not parsed"})
    try:
        item = schema.validate_item(fields).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors()]
        return Decision(cid, False, "schema_error", {"errors": errors})
    failures = {}
    for rule, check in rules:
        detail = check(item)
        if detail is not None:
            failures[rule.name] = detail
    if failures:
        first = next(iter(failures))
        return Decision(cid, False, first, {"failures": failures})
    return Decision(cid, True)
