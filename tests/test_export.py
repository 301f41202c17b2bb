"""Exports read back (issue 12, bug 7): JSONL, Parquet and a Hugging Face DatasetDict, typed from the spec.

Column types used to be inferred from the rows: an empty split had no columns, and its HF dataset
could not be loaded (`load_from_disk` raised IndexError). Every field type of the spec is here, and
the run has an empty split.
"""

from __future__ import annotations

import json

import pytest

import synthboot
from synthboot.lm.scripted import scripted_lm

SPEC = """
name: typed-export
task: Short product reviews with their labels.
fields:
  text: {type: str, description: "A review", input: true}
  label: {type: enum, values: [bad, good, mixed], description: "the verdict"}
  stars: {type: int, minimum: 1, maximum: 5, description: "stars given"}
  score: {type: float, description: "a sentiment score"}
  verified: {type: bool, description: "a verified purchase"}
  tags: {type: "list[str]", description: "topics mentioned"}
seeds:
  - {text: "Arrived broken, the box was crushed.", label: bad, stars: 1, score: -0.8, verified: true, tags: [shipping]}
  - {text: "Does what it says, battery lasts two days.", label: good, stars: 4, score: 0.6, verified: false, tags: []}
topics: [kettles]
generate: {per_topic: 2, per_call: 2, max_tokens: 400, concurrency: 1}
dedup: {minhash: false, semantic: false}
split: {train: 0.2, dev: 0.6, test: 0.2, seed: 42}
# The scripted LM answers the generator only: verify (on by default) stays off, as in conftest.
verify: {enabled: false}
"""
ROWS = [
    {"text": "The lid rattles but it boils fast.", "label": "mixed", "stars": 3, "score": 0.1, "verified": True,
     "tags": ["lid", "speed"]},
    {"text": "Quiet, quick, and the handle stays cool.", "label": "good", "stars": 5, "score": 0.9,
     "verified": False, "tags": []},
]
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("typed") / "run"
    synthboot.run(synthboot.parse_spec(SPEC), run, lm=scripted_lm([json.dumps({"examples": ROWS})]))
    return run


def expected(run) -> dict[str, list[dict]]:
    names = list(ROWS[0])
    return {split: [{n: ex[n] for n in names} for ex in synthboot.load_split(run, split)] for split in SPLITS}


def test_the_run_has_an_empty_split(typed_run):
    got = expected(typed_run)
    assert sorted(len(rows) for rows in got.values()) == [0, 1, 1]
    assert sorted(row["text"] for rows in got.values() for row in rows) == sorted(r["text"] for r in ROWS)


def test_jsonl_round_trip(typed_run, tmp_path):
    synthboot.export(typed_run, "jsonl", tmp_path)
    for split, rows in expected(typed_run).items():
        assert [json.loads(line) for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()] == rows


def test_parquet_round_trip_with_the_spec_types(typed_run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    synthboot.export(typed_run, "parquet", tmp_path)
    types = {"text": pa.string(), "label": pa.string(), "stars": pa.int64(), "score": pa.float64(),
             "verified": pa.bool_(), "tags": pa.list_(pa.string())}
    for split, rows in expected(typed_run).items():
        table = pq.read_table(tmp_path / f"{split}.parquet")
        assert {f.name: f.type for f in table.schema} == types, split  # the empty split too
        assert table.to_pylist() == rows


def test_hf_round_trip_with_class_labels(typed_run, tmp_path):
    import datasets

    synthboot.export(typed_run, "hf", tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))  # raised IndexError with an empty split
    assert set(loaded) == set(SPLITS)
    for split, rows in expected(typed_run).items():
        ds = loaded[split]
        assert len(ds) == len(rows)
        f = ds.features
        assert isinstance(f["label"], datasets.ClassLabel) and f["label"].names == ["bad", "good", "mixed"]
        assert f["stars"].dtype == "int64" and f["score"].dtype == "float64" and f["verified"].dtype == "bool"
        assert f["text"].dtype == "string"
        assert isinstance(f["tags"], (datasets.Sequence, datasets.List)) and f["tags"].feature.dtype == "string"
        decoded = [{**row, "label": f["label"].int2str(row["label"])} for row in ds]
        assert decoded == rows


def test_export_of_a_run_with_a_human_import_keeps_one_schema(typed_run, copy_run, tmp_path):
    import datasets

    run = copy_run(typed_run)
    human = tmp_path / "human.jsonl"
    human.write_text(json.dumps({"text": "Stopped working after a week.", "label": "bad", "stars": 1, "score": -0.7,
                                 "verified": True, "tags": ["durability"]}) + "\n")
    from synthboot.cli import main

    assert main(["import", str(run), str(human), "--as", "test"]) == 0
    synthboot.export(run, "hf", tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert [loaded["test"].features["label"].int2str(r["label"]) for r in loaded["test"]] == ["bad"]
    assert loaded["test"].features == loaded["train"].features == loaded["dev"].features
