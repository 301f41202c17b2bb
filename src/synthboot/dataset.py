"""The run's splits as DSPy examples, and exports to JSONL, Parquet and Hugging Face datasets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from synthboot.errors import SynthbootError
from synthboot.features import arrow_schema, hf_features, typed_rows
from synthboot.jsonl import write_jsonl
from synthboot.store import Store
from synthboot.view import SPLITS, DatasetView
from synthboot.task import Task

ExportFormat = Literal["jsonl", "parquet", "hf"]


def split_rows(store: Store, split: str) -> list[dict[str, Any]]:
    """A split's examples as the dataset view has them (synthboot.view), reviewers' edits applied."""
    if split not in SPLITS:
        raise SynthbootError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return DatasetView(store).rows(split)


def load_split(run_dir: str | Path, split: str) -> list:
    """The split as `dspy.Example`s with `.with_inputs(...)` set from the spec."""
    with Store(run_dir, readonly=True) as store:
        schema = Task.of(store.spec()).schema
        return [schema.to_example(fields) for fields in split_rows(store, split)]


def export(run_dir: str | Path, fmt: ExportFormat = "jsonl", to: str | Path | None = None) -> list[Path]:
    """Write the splits (and every candidate with its outcome, for JSONL) under `to`."""
    if fmt not in ("jsonl", "parquet", "hf"):
        raise SynthbootError(f"unknown export format {fmt!r}; choose jsonl, parquet or hf")
    target = Path(to) if to else Path(run_dir) / "export" / fmt
    with Store(run_dir, readonly=True) as store:
        _writable_folder(target, given=to is not None)
        view = DatasetView(store)
        rows = {split: view.rows(split) for split in SPLITS}
        written: list[Path] = []
        if fmt == "jsonl":
            for split, items in rows.items():
                written.append(write_jsonl(target / f"{split}.jsonl", items))
            outcomes = view.outcomes
            audit = [{"id": c.id, "origin": c.origin, "topic": c.topic, "round": c.round,
                      "outcome": outcomes.get(c.id, ("reference", None))[0],
                      "reason": outcomes.get(c.id, (None, None))[1], "fields": c.fields,
                      "parse_error": c.parse_error} for c in view.candidates]
            written.append(write_jsonl(target / "candidates.jsonl", audit))
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Column types from the spec, not the data: an empty split has the columns too.
            schema = Task.of(store.spec()).schema
            for split, items in rows.items():
                path = target / f"{split}.parquet"
                pq.write_table(pa.Table.from_pylist(typed_rows(schema, items), schema=arrow_schema(schema)), path)
                written.append(path)
        elif fmt == "hf":
            import datasets

            schema = Task.of(store.spec()).schema
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
