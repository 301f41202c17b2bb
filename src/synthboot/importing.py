"""Real, human-labeled examples into a run: `synthboot import DIR FILE --as test|train|dev`.

The seed's hybrid workflow: synthetic data to optimize, real data to prove it. Imported rows are
candidates with origin 'human', keyed by content (importing twice adds nothing), and their split
is frozen: a re-split never moves them, and the split stage never counts them in its pool.
A row may leave out output fields the program does not produce (they are simply not scored);
it must have every input field, and the fields it has must fit the task schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from synthboot.errors import SynthbootError
from synthboot.jsonl import numbered_rows
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages.dedup import compare_text
from synthboot.stages.split import SPLITS
from synthboot.store import Store
from synthboot.task import Task
from synthboot.text import normalize

ORIGIN = "human"
SETTINGS_HASH = "human-import"


@dataclass
class ImportResult:
    split: str
    rows: int
    added: int
    # Imported rows whose input text nearly repeats a synthetic example in another split (a leak to see).
    overlaps: list[tuple[int, int, str]] = field(default_factory=list)  # (imported id, other id, other split)


def read_examples(path: str | Path, schema: TaskSchema) -> list[dict[str, Any]]:
    """The rows of a JSONL file, checked against the task schema; errors name the line."""
    path = Path(path)
    rows = []
    for n, row in numbered_rows(path):
        row = {k: v for k, v in row.items() if k in schema.names}
        try:
            schema.validate_item(row)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else "(row)"
                if err["type"] == "missing" and name not in schema.inputs:
                    continue  # an unlabeled output is not scored
                raise SynthbootError(f"{path} line {n}: {name}: {err['msg']}") from None
        if not any(name in row for name in schema.outputs):
            raise SynthbootError(f"{path} line {n} has no output field ({', '.join(schema.outputs)}) to score")
        rows.append(row)
    if not rows:
        raise SynthbootError(f"{path} holds no examples")
    return rows


def import_examples(store: Store, spec: Spec, path: str | Path, split: str) -> ImportResult:
    """Add the file's examples to the run as human-labeled candidates in `split` (frozen)."""
    if split not in SPLITS:
        raise SynthbootError(f"--as must be one of {', '.join(SPLITS)}, not {split!r}")
    schema = Task.of(spec).schema
    rows = read_examples(path, schema)
    before = {c.id for c in store.candidates(origin=ORIGIN)}
    store.add_seeds(rows, origin=ORIGIN)
    keys = {f"{ORIGIN}:{json.dumps(r, sort_keys=True)}" for r in rows}
    ids = [c.id for c in store.candidates(origin=ORIGIN) if c.task_key in keys]
    splits = store.splits()
    taken = [cid for cid in ids if cid in splits and splits[cid].split != split]
    if taken:
        raise SynthbootError(f"{len(taken)} of these examples were already imported into another split "
                             f"({splits[taken[0]].split}); an example belongs to one split")
    store.write_splits(SETTINGS_HASH, {cid: split for cid in ids}, frozen=True)
    result = ImportResult(split, len(rows), len([i for i in ids if i not in before]))
    result.overlaps = _overlaps(store, spec, schema, ids, split)
    return result


def word_overlap(a: str, b: str) -> float:
    """The seed tutorial's similarity: |A & B| / max(|A|, |B|) over lower-cased word sets."""
    wa, wb = set(normalize(a).split()), set(normalize(b).split())
    return len(wa & wb) / max(len(wa), len(wb)) if wa and wb else 0.0


def near_duplicates(store: Store, spec: Spec, ids: list[int], others: list[int],
                    threshold: float | None = None) -> list[tuple[int, int]]:
    """(id, other id) pairs whose compared inputs are equal or overlap above the spec's dedup threshold."""
    names = Task.of(spec).compared_fields
    limit = spec.dedup.word_overlap.threshold if threshold is None else threshold
    theirs = [(c.id, compare_text(c.fields, names)) for c in store.candidates(ids=others) if c.fields]
    found = []
    for c in store.candidates(ids=ids):
        text = compare_text(c.fields or {}, names)
        hit = next((oid for oid, other in theirs
                    if normalize(other) == normalize(text) or word_overlap(text, other) > limit), None)
        if hit is not None:
            found.append((c.id, hit))
    return found


def _overlaps(store: Store, spec: Spec, schema: TaskSchema, ids: list[int], split: str) -> list[tuple[int, int, str]]:
    """Imported rows whose inputs (nearly) repeat an example of another split."""
    splits = store.splits()
    others = [cid for cid, r in splits.items() if r.split != split]
    return [(cid, hit, splits[hit].split) for cid, hit in near_duplicates(store, spec, ids, others)]
