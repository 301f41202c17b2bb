"""Checks every spec gets without writing a rule; validate runs them after the schema, before the rules.

- `empty:<field>`: a string field that is empty or only whitespace (always on).
- list[str] fields, per item (always on): `empty_item:<field>`, `item_too_long:<field>`
  (`item_max_length`, default the generator's `max_string_length`), `too_few_items:<field>` /
  `too_many_items:<field>` (`min_items` / `max_items`), and `not_text_item:<field>` for an item
  that is not text: a JSON fragment, braces or brackets, or no letter or digit at all (`{#3:1:`).
- `answer_leak` (specs with enum outputs; `checks.answer_leak: false` turns it off): an input that
  equals or merely restates a label, e.g. the ticket "Billing." for the label `billing`.
- `truncated:<field>` (`checks.truncated: false` turns it off): a text whose length is within
  `TRUNCATION_SLACK` characters under its bound (the field's `max_length`, else
  `generate.max_string_length`; the local engine's grammar enforces it by cutting the string) and
  that does not end as a finished text does: terminal punctuation, a closing bracket or quote
  that closes one, a digit or an emoji. Fields bounded under 80 characters (names, titles) and
  the document context of a `sources` spec are not checked. A local model's answer cut at 500
  characters mid-word was kept by every other filter (BENCHMARKS.md, the demo spec on Qwen).
- `mixed_script:<field>` (`checks.mixed_script: false` turns it off): an output with letters of a
  writing system (synthboot.scripts) that neither the seeds nor the example's inputs use, such as
  Chinese characters inside an English answer. Latin is always allowed (code and names are Latin
  in any language); digits, punctuation, emoji and math symbols belong to no script.

Each check is `fn(item, schema, spec) -> (reason, detail) | None`; `CHECKS` is the list validate runs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from synthboot.schema import TaskSchema, all_seeds
from synthboot.scripts import first_in_script, scripts_of
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


# A string the grammar cut mostly ends exactly at its bound, not always: a question cut mid-sentence
# in a stored run has 398 characters of 400 (BENCHMARKS.md, default checks). Hence some slack.
TRUNCATION_SLACK = 3
# Fields bounded shorter hold names, titles and labels, which end with no punctuation when finished.
TRUNCATION_MIN_BOUND = 80
_TERMINAL = frozenset(".!?;…。！？；")  # ... and CJK full stop, !, ?, ;
_CLOSED_ALWAYS = frozenset("”’»」』）】")  # typographic closing quotes, CJK brackets
_BRACKETS = {")": "(", "]": "[", "}": "{", ">": "<"}
_APOSTROPHE = re.compile(r"(?<=[^\W\d_])'(?=[^\W\d_])")  # it's, process's: not a quote


def ends_finished(text: str) -> bool:
    """Whether a text ends as a finished one does, not cut mid-word or mid-clause."""
    text = text.rstrip()
    if not text:
        return True
    last = text[-1]
    if last in _TERMINAL or last in _CLOSED_ALWAYS:
        return True
    if last in _BRACKETS:
        return text.count(last) >= text.count(_BRACKETS[last])
    if last in "\"`":
        return text.count(last) % 2 == 0
    if last == "'":
        return _APOSTROPHE.sub("", text).count("'") % 2 == 0
    # A number ends many finished answers ("... #### 72"); an emoji or a symbol ends a text as a full stop does.
    return unicodedata.category(last) in ("Nd", "So")


def string_bound(name: str, schema: TaskSchema, spec: Spec) -> int:
    """The length the generator was held to for a string field: its own max_length, else the spec's bound."""
    for meta in schema.model.model_fields[name].metadata:
        if (bound := getattr(meta, "max_length", None)) is not None:
            return int(bound)
    return spec.generate.max_string_length


def truncated(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> Failure | None:
    """A text at its length bound that does not end as a finished text: cut by the bound."""
    if not spec.checks.truncated:
        return None
    # A document chunk given as context was not generated under the bound (synthboot.sources).
    skip = spec.sources.context_field if spec.sources is not None else None
    for name in schema.names:
        value = item.get(name)
        if name == skip or schema.kind(name) != "str" or not isinstance(value, str):
            continue
        bound = string_bound(name, schema, spec)
        # Longer than the bound: not written under it, so not cut by it.
        at_bound = bound - TRUNCATION_SLACK <= len(value) <= bound
        if bound >= TRUNCATION_MIN_BOUND and at_bound and not ends_finished(value):
            return (f"truncated:{name}", f"{name} has {len(value)} characters (bound {bound}) and ends "
                    f"mid-text: ...{value.rstrip()[-30:]!r}")
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def mixed_script(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> Failure | None:
    """An output with letters of a script that neither the seeds nor the item's inputs use."""
    if not spec.checks.mixed_script:
        return None
    allowed = {"LATIN"} | seed_scripts(spec)
    for name in schema.inputs:
        for text in _texts(item.get(name)):
            allowed |= scripts_of(text)
    for name in schema.outputs:
        for text in _texts(item.get(name)):
            stray = sorted(scripts_of(text) - allowed)
            if stray:
                return (f"mixed_script:{name}", f"{name} has {stray[0]} letters that neither the seeds nor the "
                        f"inputs use: {first_in_script(text, stray[0])!r}")
    return None


# Spec object id -> (the spec, its seeds' scripts). Keyed by the object, not its content: hashing
# the spec's content per item cost 0.25 ms, ten times every other check together. The spec is
# held, so its id is not reused while cached.
_seed_scripts: dict[int, tuple[Spec, frozenset[str]]] = {}


def seed_scripts(spec: Spec) -> frozenset[str]:
    """The scripts of every seed's text fields (read once per spec: validate asks per item)."""
    cached = _seed_scripts.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    found = frozenset(s for seed in all_seeds(spec) for value in seed.values()
                      for text in _texts(value) for s in scripts_of(text))
    if len(_seed_scripts) >= 32:
        _seed_scripts.clear()
    _seed_scripts[id(spec)] = (spec, found)
    return found


CHECKS: list[Check] = [empty_strings, list_items, label_leak, truncated, mixed_script]


def default_checks(item: dict[str, Any], schema: TaskSchema, spec: Spec) -> dict[str, str]:
    """Reason -> detail for every default check the item fails (empty when it passes)."""
    failures: dict[str, str] = {}
    for check in CHECKS:
        failed = check(item, schema, spec)
        if failed is not None:
            failures.setdefault(*failed)
    return failures
