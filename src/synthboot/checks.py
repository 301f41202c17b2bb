"""Checks every spec gets without writing a rule; validate runs them after the schema, before the rules.

- `empty:<field>`: a string field that is empty or only whitespace (always on).
- list[str] fields, per item (always on): `empty_item:<field>`, `item_too_long:<field>`
  (`item_max_length`, default the generator's `max_string_length`), `too_few_items:<field>` /
  `too_many_items:<field>` (`min_items` / `max_items`), and `not_text_item:<field>` for an item
  that is not text: a JSON fragment, braces or brackets, or no letter or digit at all (`{#3:1:`).
- `answer_leak` (specs with enum outputs; `checks.answer_leak: false` turns it off): an input that
  equals or merely restates a label, e.g. the ticket "Billing." for the label `billing`.

Each check is `fn(item, schema, spec) -> (reason, detail) | None`; `CHECKS` is the list validate runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from synthboot.schema import TaskSchema
from synthboot.spec import Spec

Failure = tuple[str, str]
Check = Callable[[dict[str, Any], TaskSchema, Spec], "Failure | None"]

# JSON structure inside what should be a phrase: braces, brackets, `"key":`.
_STRUCTURE = re.compile(r'[{}\[\]]|"\s*:')
_WORD = re.compile(r"[^\W_]+")
# Words that carry no content of their own around a restated label ("the label is billing").
_FILLER = frozenset("""a an the this that it is are was be of to for about on in with my our your i we me
label labels category class intent type answer output input example text ticket message query question
sentiment topic value tag just only re regarding""".split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("_", " ").replace("-", " "))


def empty_strings(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> Failure | None:
    for name in schema.names:
        value = item.get(name)
        if isinstance(value, str) and not value.strip():
            return f"empty:{name}", f"{name} is empty or only whitespace"
    return None


def list_items(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> Failure | None:
    for name in schema.names:
        values = item.get(name)
        if schema.kind(name) != "list" or not isinstance(values, list):
            continue
        fspec = (spec.fields or {}).get(name)
        min_items = fspec.min_items if fspec else None
        max_items = fspec.max_items if fspec else None
        max_len = (fspec.item_max_length if fspec else None) or spec.generate.max_string_length
        if min_items is not None and len(values) < min_items:
            return f"too_few_items:{name}", f"{name} has {len(values)} items, fewer than {min_items}"
        if max_items is not None and len(values) > max_items:
            return f"too_many_items:{name}", f"{name} has {len(values)} items, more than {max_items}"
        for i, value in enumerate(values):
            text = value if isinstance(value, str) else str(value)
            if not text.strip():
                return f"empty_item:{name}", f"{name}[{i}] is empty"
            if len(text.strip()) > max_len:
                return f"item_too_long:{name}", f"{name}[{i}] has {len(text.strip())} characters, more than {max_len}"
            if _STRUCTURE.search(text) or not _WORD.search(text):
                return f"not_text_item:{name}", f"{name}[{i}] is not text: {text[:60]!r}"
    return None


def label_leak(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> Failure | None:
    """An input made of a label's words and filler only: the label is the whole input."""
    if not spec.checks.answer_leak:
        return None
    labels = [(f, v) for f, values in schema.enum_fields().items() if f in schema.outputs for v in values]
    if not labels:
        return None
    for name in schema.inputs:
        value = item.get(name)
        if not isinstance(value, str):
            continue
        words = set(_words(value))
        for field, label in labels:
            label_words = set(_words(label))
            if label_words and label_words <= words and not (words - label_words - _FILLER):
                return "answer_leak", f"{name} {value[:60]!r} only restates the {field} label {label!r}"
    return None


CHECKS: list[Check] = [empty_strings, list_items, label_leak]


def default_checks(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> dict[str, str]:
    """Reason -> detail for every default check the item fails (empty when it passes)."""
    failures: dict[str, str] = {}
    for check in CHECKS:
        failed = check(item, schema, spec)
        if failed is not None:
            failures.setdefault(*failed)
    return failures
