"""The validation rule library: named, configurable quality checks.

A rule in the spec names a built-in `check` (or a `module:function`) and its parameters; its `name`
is the rejection reason. A check returns None when the example passes, or a short detail saying
what is wrong.

Custom rules are plain functions `fn(example: dict) -> bool | str | None`: True or None passes,
False fails, a string fails with that string as the detail. A custom rule that raises is broken,
not a verdict on the example: it raises `RuleRaised`, which the validate stage records as the
reason `rule_error:<name>`. Its code is part of the validate stage's settings hash, so editing
the function re-decides the stored candidates.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
from collections.abc import Callable
from typing import Any

from synthboot.errors import SpecError
from synthboot.schema import TaskSchema, import_object
from synthboot.spec import RuleSpec
from synthboot.text import normalize

Check = Callable[[dict[str, Any], RuleSpec, TaskSchema], str | None]

# Template and filler text a generator leaves behind instead of content.
_PLACEHOLDER = re.compile(
    r"\[(?:insert|your|placeholder|question|answer|topic|name|example)[^\]]*\]|<(?:insert|your|placeholder)[^>]*>"
    # TODO/TBD/XXX only in capitals: "a todo list app" is content.
    r"|\{\{[^}]*\}\}|lorem ipsum|(?-i:\bTODO\b|\bTBD\b|\bXXX+\b)|^\s*\.\.\.\s*$"
    r"|^\s*(?:n/?a|none|null|string|text)\s*$",
    re.IGNORECASE)
# The commonest function words of a few Latin-script languages: enough to tell them apart in a
# sentence or two (the `language` rule).
_STOPWORDS = {
    "en": frozenset("the a an is are was were be to of and or in on for with what how why which that this it as by "
                    "from does do can not when where who you your its at if".split()),
    "es": frozenset("el la los las un una es son de del y o en con para por que qué cómo como se su sus al lo "
                    "sobre cada".split()),
    "fr": frozenset("le la les un une est sont de du des et ou en dans avec pour par que qui quoi comment se sa son "
                    "ses au aux ce cette".split()),
    "de": frozenset("der die das ein eine ist sind und oder in mit für von zu was wie warum nicht den dem des sich "
                    "auf ich sie es".split()),
    "it": frozenset("il lo la gli le un una è sono di del della e o in con per che cosa come non si suo sua al".split()),
    "pt": frozenset("o a os as um uma é são de do da e ou em com para por que como não se seu sua ao no na".split()),
}


def _text(example: dict[str, Any], name: str | None) -> str:
    value = example.get(name) if name else None
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "" if value is None else str(value)


def min_length(example, rule, schema):
    n = len(_text(example, rule.field).strip())
    return f"{rule.field} has {n} characters, fewer than {rule.value:g}" if n < (rule.value or 0) else None


def max_length(example, rule, schema):
    n = len(_text(example, rule.field).strip())
    return f"{rule.field} has {n} characters, more than {rule.value:g}" if rule.value is not None and n > rule.value else None


def enum(example, rule, schema):
    allowed = rule.values or schema.enum_fields().get(rule.field or "", [])
    value = example.get(rule.field)
    return None if str(value) in allowed else f"{rule.field}={value!r} is not one of {', '.join(allowed)}"


def regex(example, rule, schema):
    found = re.search(rule.pattern or "", _text(example, rule.field)) is not None
    must_match = not rule.params.get("forbid", False)
    if found == must_match:
        return None
    return f"{rule.field} {'does not match' if must_match else 'matches'} /{rule.pattern}/"


def banned_phrases(example, rule, schema):
    names = [rule.field] if rule.field else (rule.fields or schema.names)
    for name in names:
        text = _text(example, name).lower()
        hit = next((p for p in rule.phrases or [] if p.lower() in text), None)
        if hit:
            return f"{name} contains {hit!r}"
    return None


def answer_leak(example, rule, schema):
    """An output's text appears inside an input: the example gives its own answer away."""
    enums = schema.enum_fields()
    outputs = [f for f in (rule.fields or schema.outputs) if f in schema.outputs and f not in enums]
    min_chars = int(rule.value or 12)
    for out in outputs:
        answer = normalize(_text(example, out))
        if len(answer) < min_chars:
            continue
        for inp in schema.inputs:
            if answer in normalize(_text(example, inp)):
                return f"{out} appears inside {inp}"
    return None


def placeholder(example, rule, schema):
    for name in [rule.field] if rule.field else schema.names:
        text = _text(example, name)
        if _PLACEHOLDER.search(text):
            return f"{name} holds placeholder text: {text[:60]!r}"
        if text.strip().lower() in {name.lower(), schema.description(name).strip().lower()} and text.strip():
            return f"{name} repeats its own field name or description"
    return None


def language(example, rule, schema):
    """The text is in one of the allowed languages (`values`, default [en]).

    A heuristic: non-Latin script is not one of these languages; otherwise the language whose
    common function words the text uses most (en, es, fr, de, it, pt). Short texts pass.
    """
    allowed = rule.values or ["en"]
    for name in [rule.field] if rule.field else [n for n in schema.names if n not in schema.enum_fields()]:
        text = _text(example, name)
        letters = [ch for ch in text if ch.isalpha()]
        if len(letters) < 20:
            continue
        if sum(ch.isascii() or "\u00c0" <= ch <= "\u024f" for ch in letters) / len(letters) < 0.9:
            return f"{name} is not in Latin script, so not {'/'.join(allowed)}"
        words = re.findall(r"[^\W\d_]+", text.lower())
        votes = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
        best = max(votes, key=votes.get)
        if votes[best] >= 2 and best not in allowed and votes[best] > max(votes.get(a, 0) for a in allowed):
            return f"{name} looks like {best}, not {'/'.join(allowed)}"
    return None


BUILTIN: dict[str, Check] = {
    "min_length": min_length, "max_length": max_length, "enum": enum, "regex": regex,
    "banned_phrases": banned_phrases, "answer_leak": answer_leak, "placeholder": placeholder,
    "language": language,
}


def compile_rules(rules: list[RuleSpec], schema: TaskSchema,
                  base_dir: str | None = None) -> list[tuple[RuleSpec, Callable[..., str | None]]]:
    """Each rule with a function `example -> detail | None`. Bad rules are SpecErrors.

    A `module:function` is imported with `base_dir` (the spec's folder) searched first.
    """
    compiled: list[tuple[RuleSpec, Callable[..., str | None]]] = []
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if rule.check in BUILTIN:
            needs_field = rule.check in ("min_length", "max_length", "enum", "regex")
            if needs_field and not rule.field:
                raise SpecError(f"check {rule.check!r} needs a `field`", field=f"{where}.field")
            if rule.check in ("min_length", "max_length") and rule.value is None:
                raise SpecError(f"check {rule.check!r} needs a `value`", field=f"{where}.value")
            if rule.check == "regex":
                try:
                    re.compile(rule.pattern or "")
                except re.error as exc:
                    raise SpecError(f"invalid regular expression: {exc}", field=f"{where}.pattern") from None
            if rule.check == "enum" and not rule.values and rule.field not in schema.enum_fields():
                raise SpecError(f"{rule.field!r} is not an enum field: give the allowed `values`",
                                field=f"{where}.values")
            if rule.check == "banned_phrases" and not rule.phrases:
                raise SpecError("check 'banned_phrases' needs `phrases`", field=f"{where}.phrases")
            check = BUILTIN[rule.check]
            compiled.append((rule, lambda ex, c=check, r=rule: c(ex, r, schema)))
        elif ":" in rule.check:
            fn = import_object(rule.check, what="function", field=f"{where}.check", search=base_dir)
            if not callable(fn):
                raise SpecError(f"{rule.check!r} is not callable", field=f"{where}.check")
            compiled.append((rule, lambda ex, f=fn, r=rule: _custom(f, ex, r)))
        else:
            raise SpecError(f"unknown check {rule.check!r}; built-in checks: {', '.join(BUILTIN)}, "
                            "or `module:function`", field=f"{where}.check")
    return compiled


class RuleRaised(Exception):
    """A custom rule raised on an example: the rule is broken, the example is not judged by it."""

    def __init__(self, rule: RuleSpec, exc: Exception):
        self.rule = rule.name
        self.message = " ".join(f"{rule.check} raised {type(exc).__name__}: {exc}".splitlines())[:500]
        super().__init__(self.message)


def custom_rule_sources(rules: list[RuleSpec]) -> dict[str, str]:
    """Each custom rule's name -> a hash of its function's code (what the settings hash includes)."""
    out = {}
    for i, rule in enumerate(rules):
        if rule.check not in BUILTIN and ":" in rule.check:
            fn = import_object(rule.check, what="function", field=f"rules[{i}].check")
            out[rule.name] = hashlib.sha256(_code_of(fn).encode()).hexdigest()[:16]
    return out


def _code_of(fn: Any) -> str:
    """The rule's code as it runs: its compiled body (bytecode, constants, names, nested functions).

    Not the file's text: a process that imported the rule before the file was edited runs the old
    code, and decisions stored under a hash of the new text would never be made again.
    """
    code = getattr(fn, "__code__", None) or getattr(getattr(type(fn), "__call__", None), "__code__", None)
    if code is not None:
        return _code_text(code)
    try:  # a callable without Python bytecode: its source, else its name
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return f"{type(fn).__module__}.{type(fn).__qualname__}"


def _code_text(code: types.CodeType) -> str:
    consts = [_code_text(c) if isinstance(c, types.CodeType) else
              repr(sorted(map(repr, c))) if isinstance(c, frozenset) else repr(c)  # sets: no hash-seed order
              for c in code.co_consts]
    return "|".join([code.co_code.hex(), repr(code.co_names), repr(code.co_varnames), *consts])


def _custom(fn: Callable, example: dict[str, Any], rule: RuleSpec) -> str | None:
    try:
        outcome = fn(dict(example), **rule.params) if rule.params else fn(dict(example))
    except Exception as exc:  # the user's rule is broken: say so, do not blame the example
        raise RuleRaised(rule, exc) from exc
    if outcome is True or outcome is None:
        return None
    return outcome if isinstance(outcome, str) else f"{rule.check} returned {outcome!r}"
