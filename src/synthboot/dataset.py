"""The run's splits as DSPy examples, and exports to JSONL, Parquet and Hugging Face datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from synthboot.errors import SynthbootError
from synthboot.features import arrow_schema, hf_features, typed_rows
from synthboot.reviews import latest_reviews, with_edits
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages.split import SPLITS
from synthboot.status import candidate_outcomes
from synthboot.store import Store

ExportFormat = Literal["jsonl", "parquet", "hf"]


def split_rows(store: Store, split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:
        raise SynthbootError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    ids = {cid for cid, row in store.splits().items() if row["split"] == split}
    # Review decisions outrank everything: edited fields replace the generated ones, and a rejected
    # example stays out even where its split row survives (frozen test items).
    reviews = latest_reviews(store)
    ids -= {cid for cid, r in reviews.items() if not r.keeps}
    return [c.fields for c in (with_edits(c, reviews) for c in store.candidates() if c.id in ids)
            if c.fields is not None]


def _spec(store: Store) -> Spec:
    body = store.latest_spec()
    if body is None:
        raise SynthbootError(f"{store.run_dir} has no spec yet: run `synthboot run` first")
    return Spec.model_validate(body)


def load_split(run_dir: str | Path, split: str) -> list:
    """The split as `dspy.Example`s with `.with_inputs(...)` set from the spec."""
    with Store(run_dir, readonly=True) as store:
        schema = TaskSchema.from_spec(_spec(store))
        return [schema.to_example(fields) for fields in split_rows(store, split)]


def export(run_dir: str | Path, fmt: ExportFormat = "jsonl", to: str | Path | None = None) -> list[Path]:
    """Write the splits (and every candidate with its outcome, for JSONL) under `to`."""
    if fmt not in ("jsonl", "parquet", "hf"):
        raise SynthbootError(f"unknown export format {fmt!r}; choose jsonl, parquet or hf")
    target = Path(to) if to else Path(run_dir) / "export" / fmt
    with Store(run_dir, readonly=True) as store:
        _writable_folder(target, given=to is not None)
        rows = {split: split_rows(store, split) for split in SPLITS}
        written: list[Path] = []
        if fmt == "jsonl":
            for split, items in rows.items():
                written.append(_write_jsonl(target / f"{split}.jsonl", items))
            outcomes = candidate_outcomes(store)
            audit = [{"id": c.id, "origin": c.origin, "topic": c.topic, "round": c.round,
                      "outcome": outcomes.get(c.id, ("reference", None))[0],
                      "reason": outcomes.get(c.id, (None, None))[1], "fields": c.fields,
                      "parse_error": c.parse_error} for c in store.candidates()]
            written.append(_write_jsonl(target / "candidates.jsonl", audit))
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Column types from the spec, not the data: an empty split has the columns too.
            schema = TaskSchema.from_spec(_spec(store))
            for split, items in rows.items():
                path = target / f"{split}.parquet"
                pq.write_table(pa.Table.from_pylist(typed_rows(schema, items), schema=arrow_schema(schema)), path)
                written.append(path)
        elif fmt == "hf":
            import datasets

            schema = TaskSchema.from_spec(_spec(store))
            features = hf_features(schema)
            columns = {split: {name: [row[name] for row in typed_rows(schema, items)] for name in schema.names}
                       for split, items in rows.items()}  # columns even when a split has no row
            dd = datasets.DatasetDict({split: datasets.Dataset.from_dict(cols, features=features)
                                       for split, cols in columns.items()})
            # An empty split needs one (empty) shard: with none, datasets 5.2 writes no data file and
            # `load_from_disk` raises IndexError.
            dd.save_to_disk(str(target), num_shards={split: 1 for split, ds in dd.items() if len(ds) == 0})
            written.append(target)
    return written


def _writable_folder(target: Path, *, given: bool) -> None:
    hint = "" if given else ": give another target with --to (is the run directory read-only?)"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthbootError(f"cannot create {target}: {exc.strerror or exc}{hint}") from None
    if not os.access(target, os.W_OK):
        raise SynthbootError(f"cannot write to {target}{hint}")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
