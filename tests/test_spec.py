"""The spec file: valid specs load; every error names the field and the YAML line."""

from __future__ import annotations

import textwrap

import pytest

import synthboot
from synthboot.errors import SpecError
from synthboot.schema import TaskSchema

from .conftest import EXAMPLE_SPEC, REPO, TINY_SPEC


def test_example_spec_reproduces_the_tutorial():
    spec = synthboot.load_spec(EXAMPLE_SPEC)
    assert len(spec.seeds) == 3
    assert spec.topics[0] == "python-basics" and len(spec.topics) == 10
    assert (spec.generate.per_topic, spec.generate.temperature) == (20, 0.9)
    assert (spec.split.train, spec.split.dev, spec.split.test, spec.split.seed) == (0.2, 0.6, 0.2, 42)
    schema = TaskSchema.from_spec(spec)
    assert schema.inputs == ("question",)
    assert schema.enum_fields() == {"difficulty": ["easy", "medium", "hard"]}


def test_classification_spec_loads():
    spec = synthboot.load_spec(REPO / "examples" / "support-tickets.yaml")
    schema = TaskSchema.from_spec(spec)
    assert schema.inputs == ("ticket",)
    assert set(schema.enum_fields()) == {"category", "urgency"}


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        synthboot.parse_spec(textwrap.dedent(text), source="spec.yaml")
    return info.value


def test_unknown_field_names_field_and_line():
    err = _error(TINY_SPEC.replace("split:", "colour: red\nsplit:"))
    assert err.field == "colour"
    assert err.line == TINY_SPEC.replace("split:", "colour: red\nsplit:").splitlines().index("colour: red") + 1
    assert "spec.yaml:" in str(err) and "colour" in str(err)


def test_bad_yaml_names_line():
    err = _error("task: x\nfields: [unclosed\n")
    assert err.line is not None and "invalid YAML" in str(err)


def test_wrong_type_in_nested_setting():
    text = TINY_SPEC.replace("per_call: 2", "per_call: many")
    err = _error(text)
    assert err.field == "generate.per_call"
    assert err.line == next(i for i, line in enumerate(text.splitlines(), 1) if "per_call: many" in line)


def test_seed_that_violates_schema_is_named():
    text = TINY_SPEC.replace("difficulty: medium}", "difficulty: impossible}")
    err = _error(text)
    assert err.field == "seeds[1].difficulty"
    assert err.line == next(i for i, line in enumerate(text.splitlines(), 1) if "impossible" in line)


def test_split_fractions_must_sum_to_one():
    err = _error(TINY_SPEC.replace("train: 0.34", "train: 0.5"))
    assert err.field == "split" and "1.0" in str(err)


def test_enum_without_values():
    err = _error(TINY_SPEC.replace("{type: enum, values: [easy, medium, hard],", "{type: enum,"))
    assert err.field == "fields.difficulty"


def test_unknown_input_field():
    err = _error(TINY_SPEC + "inputs: [nonexistent]\n")
    assert err.field == "inputs[0]"


def test_bad_module_path_for_schema():
    err = _error("task: t\nschema: no_such_pkg.models:Thing\ntopics: [a]\ninputs: [x]\n")
    assert err.field == "schema" and "no_such_pkg" in str(err)


def test_pydantic_model_as_schema(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        from typing import Literal
        from pydantic import BaseModel, Field
        class Review(BaseModel):
            text: str = Field(description="A product review")
            label: Literal["positive", "negative"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = synthboot.parse_spec("task: reviews\nschema: my_models:Review\ninputs: [text]\ntopics: [books]\n"
                                "seeds: [{text: Great read, label: positive}]\n")
    schema = TaskSchema.from_spec(spec)
    assert schema.enum_fields() == {"label": ["positive", "negative"]}
    assert schema.outputs == ["label"]


def test_seeds_file(tmp_path):
    (tmp_path / "seeds.jsonl").write_text('{"question": "What is a set in Python?", "answer": "An unordered '
                                          'collection of unique items.", "difficulty": "easy"}\n\n')
    path = tmp_path / "spec.yaml"
    path.write_text(TINY_SPEC + "seeds_file: seeds.jsonl\n")
    spec = synthboot.load_spec(path)
    from synthboot.schema import all_seeds
    assert len(all_seeds(spec)) == 3


def test_missing_file():
    with pytest.raises(SpecError, match="file not found"):
        synthboot.load_spec("/nonexistent/spec.yaml")
