"""`synthboot init --template`: every template loads, validates and estimates; one runs end to end on
the embedded model; folders are created, files are not overwritten without --force."""

from __future__ import annotations

import json

import pytest

import synthboot
from synthboot.cli import main
from synthboot.schema import TaskSchema
from synthboot.stages.strategies import attributes_text
from synthboot.templates import TEMPLATES, available

from .conftest import REPO

SHIPPED = [name for name in TEMPLATES if name in available()]


@pytest.mark.parametrize("name", SHIPPED)
def test_template_loads_and_estimates(name, tmp_path, capsys):
    path = tmp_path / "new" / "folder" / f"{name}.yaml"  # missing folders are created
    assert main(["init", str(path), "--template", name]) == 0
    spec = synthboot.load_spec(path)  # parses, validates, compiles its rules
    assert (spec.topics or spec.sources) and (spec.fields or spec.schema_ref)  # rag: documents, not topics
    assert "THIS.yaml" not in path.read_text() and str(path) in path.read_text()
    capsys.readouterr()
    assert main(["estimate", str(path), "--limit", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calls"] >= 1


def test_init_refuses_to_overwrite_without_force(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    assert main(["init", str(path), "--template", "math"]) == 0
    path.write_text("mine")
    assert main(["init", str(path), "--template", "classification"]) == 2
    assert "--force" in capsys.readouterr().err and path.read_text() == "mine"
    assert main(["init", str(path), "--template", "classification", "--force"]) == 0
    assert synthboot.load_spec(path).name == "support-tickets"
    assert main(["init", str(tmp_path / "x.yaml"), "--template", "poetry"]) == 2


def test_rag_template_writes_its_docs_folder_beside_the_spec(tmp_path):
    """The rag template reads `rag-docs/*.md` beside the spec: init writes both, into a new folder."""
    assert "rag" in available()
    path = tmp_path / "new" / "rag.yaml"
    assert main(["init", str(path), "--template", "rag"]) == 0
    assert sorted(p.suffix for p in (path.parent / "rag-docs").iterdir()) and \
        all(p.suffix == ".md" for p in (path.parent / "rag-docs").iterdir())
    spec = synthboot.load_spec(path)
    assert spec.sources is not None
    from synthboot.sources import load_chunks

    assert load_chunks(spec)  # the globs match the copied pages


def test_math_template_runs_as_written_on_the_embedded_model(tmp_path, capsys):
    """One batch of the math template (an int answer field) on the real embedded model."""
    path = tmp_path / "math.yaml"
    assert main(["init", str(path), "--template", "math"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--limit", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"]["calls"]["by_purpose"]["generate"] == 1  # one batch (the verify stage may add its own)
    assert doc["status"]["funnel"]["parsed"] >= 1  # the embedded model answered in the template's schema


@pytest.mark.parametrize("source", ["template", "example"])
def test_classification_specs_give_every_label_a_meaning_the_generator_sees(source, tmp_path):
    """A new user's classification spec carries per-label `meanings`; a batch asked for one label is told its meaning."""
    path = tmp_path / "c.yaml"
    if source == "template":
        assert main(["init", str(path), "--template", "classification"]) == 0
    else:
        path = REPO / "examples" / "support-tickets.yaml"
    spec = synthboot.load_spec(path)
    schema = TaskSchema.from_spec(spec)
    for name, values in schema.enum_fields().items():
        meanings = spec.fields[name].meanings
        assert meanings and set(meanings) == set(values), name
    meaning = spec.fields["category"].meanings["billing"]
    assert attributes_text(spec, schema, (("category", "billing"),)) == f"category = billing ({meaning})"
