"""Validate: parse, then schema, then the default checks (synthboot.checks), then the named quality
rules. Every rejection keeps its reason.

A custom rule that raises is recorded as `rule_error:<name>` with its message; when the same error
repeats `MAX_IDENTICAL_RULE_ERRORS` times the rule is broken, not the data: the stage keeps the
decisions up to there and stops with a `RuleError`, instead of rejecting every candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pydantic

from synthboot.checks import default_checks, empty_strings, seed_scripts
from synthboot.errors import SynthbootError
from synthboot.rules import RuleRaised, custom_rule_sources
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages import StageResult, passed, settings_hash
from synthboot.store import Candidate, Decision, Store
from synthboot.task import Task

STAGE = "validate"
RULE_ERROR = "rule_error:"  # + the rule's name: the reason of a candidate a custom rule raised on
MAX_IDENTICAL_RULE_ERRORS = 3


class RuleError(SynthbootError):
    """A custom rule raises the same error on candidate after candidate: fix the rule and run again."""


def decide_all(spec: Spec, candidates: list[Candidate]) -> list[Decision]:
    """Each candidate's decision; a pure function of the spec, so it can run anywhere (the Ray engine)."""
    task = Task.of(spec)
    return [_decide(c.id, c.fields, c.parse_error, task.schema, task.rules, spec) for c in candidates]


def run_validate(store: Store, spec: Spec, upstream_hash: str = "", *,
                 decide: Callable[[Spec, list[Candidate]], list[Decision]] = decide_all) -> StageResult:
    task = Task.of(spec)
    schema = task.schema
    task.rules  # compiled now: a bad rule is a SpecError here, before any work
    # The custom rules' source is in the hash: editing a rule function re-decides the candidates.
    stage_hash = settings_hash(upstream_hash, STAGE, schema.model.model_json_schema(),
                               [r.model_dump() for r in spec.rules], custom_rule_sources(spec.rules),
                               _checks_settings(spec))
    result = StageResult(STAGE, stage_hash)
    existing = store.decisions(STAGE)
    todo = [c for c in passed(store, None, None)
            if (d := existing.get(c.id)) is None or d.settings_hash != stage_hash]
    decisions = decide(spec, todo)
    broken = _repeated_rule_error(decisions)
    if broken is not None:
        decisions = decisions[:broken[0] + 1]
    for decision in decisions:
        result.decided += 1
        if decision.kept:
            result.kept += 1
        else:
            result.rejected[decision.reason] += 1
    store.write_decisions(STAGE, stage_hash, decisions)
    if broken is not None:
        _, rule, message = broken
        raise RuleError(f"rule {rule!r} raised the same error on {MAX_IDENTICAL_RULE_ERRORS} candidates: {message}; "
                        f"fix the rule and run again ({len(decisions)} decided, {len(todo) - len(decisions)} left "
                        "undecided, everything generated is stored)")
    return result


def _checks_settings(spec: Spec) -> list:
    """What the default checks depend on; the version changes when their code does."""
    items = {n: (f.min_items, f.max_items, f.item_max_length) for n, f in (spec.fields or {}).items()}
    # The seeds' scripts are what mixed_script allows: new seeds in another script re-decide.
    scripts = sorted(seed_scripts(spec)) if spec.checks.mixed_script else []
    return ["checks-v2", spec.checks.model_dump(), items, spec.generate.max_string_length, scripts]


def _repeated_rule_error(decisions: list[Decision]) -> tuple[int, str, str] | None:
    """(index, rule, message) of the decision where one rule error is seen for the Nth time, if any."""
    seen: Counter = Counter()
    for index, decision in enumerate(decisions):
        for rule, message in ((decision.details or {}).get("rule_errors") or {}).items():
            seen[rule, message] += 1
            if seen[rule, message] >= MAX_IDENTICAL_RULE_ERRORS:
                return index, rule, message
    return None


def _decide(cid: int, fields: dict | None, parse_error: str | None, schema: TaskSchema, rules,
            spec: Spec) -> Decision:
    if fields is None:
        return Decision(cid, False, "parse_error", {"error": parse_error or "not parsed"})
    # Before the schema: an empty string says `empty:<field>`, not a schema's min_length message.
    if isinstance(fields, dict) and (empty := empty_strings(fields, schema, spec)) is not None:
        return Decision(cid, False, empty[0], {"failures": {empty[0]: empty[1]}})
    try:
        item = schema.validate_item(fields).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors()]
        return Decision(cid, False, "schema_error", {"errors": errors})
    failures: dict[str, str] = default_checks(item, schema, spec)
    raised: dict[str, str] = {}  # rule -> the error it raised
    for rule, check in rules:
        try:
            detail = check(item)
        except RuleRaised as exc:
            failures[f"{RULE_ERROR}{rule.name}"] = raised[rule.name] = exc.message
            continue
        if detail is not None:
            failures[rule.name] = detail
    if failures:
        first = next(iter(failures))
        return Decision(cid, False, first, {"failures": failures, **({"rule_errors": raised} if raised else {})})
    return Decision(cid, True)
