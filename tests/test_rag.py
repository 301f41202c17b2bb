"""The built-in `rag` program: hybrid retrieval over the run's chunks, optimized and scored with recall."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.optimize import OptimizeSettings, load_optimized, run_optimize
from synthboot.optimize.rag import HybridRetriever
from synthboot.cli.render_optimize import print_optimize
from synthboot.sources import chunk_sections, read_sections, sentences
from synthboot.spec import SourcesSpec
from synthboot.store import Store
from tests.test_sources_pipeline import DOCS, SPEC, grounded_reply


def test_hybrid_retrieval_finds_the_chunk_a_question_is_about():
    settings = SourcesSpec(paths=["x"], max_tokens=60, overlap=10, min_tokens=10)
    chunks = [c for p in sorted(DOCS.iterdir()) for c in chunk_sections(p.name, read_sections(p), settings)]
    retriever = HybridRetriever([c.text for c in chunks])
    for question, where in [("How hot should the water be for green tea?", "Green tea"),
                            ("Who was the last head keeper of the light?", "Keepers"),
                            ("How often should a compost heap be turned?", "Turning the heap"),
                            ("what pressure for mountain bike tyres", "bicycle")]:
        top = [chunks[i] for i in retriever(question, 2)]
        assert any(where in c.heading or where in c.document for c in top), (question, [c.heading for c in top])


def _field(prompt: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", prompt, re.DOTALL)
    return match.group(1) if match else ""


def student_or_judge(prompt: str) -> str:
    if "[[ ## ground_truth ## ]]" in prompt:  # DSPy's SemanticF1 judge
        same = _field(prompt, "ground_truth").strip() == _field(prompt, "system_response").strip()
        return json.dumps({"reasoning": "compared", "recall": 1.0 if same else 0.2, "precision": 1.0 if same else 0.2})
    context = _field(prompt, "context")  # the rag program: answer with the first retrieved passage's last sentence
    first = context.split("\n\n")[1] if "\n\n" in context else context
    return json.dumps({"reasoning": "from the context", "answer": sentences(first)[-1]})


@pytest.fixture
def docs_run(tmp_path) -> Path:
    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "docs-qa.yaml").write_text(SPEC.replace("per_chunk: 1", "per_chunk: 1\n  grounding: {min_similarity: null}"))
    synthboot.run(synthboot.load_spec(tmp_path / "docs-qa.yaml"), tmp_path / "run",
                  lm=scripted_lm([grounded_reply], cycle=True))
    return tmp_path / "run"


def test_rag_program_optimizes_and_reports_retrieval_recall(docs_run):
    lm = scripted_lm([student_or_judge], cycle=True)
    settings = OptimizeSettings(program="rag", optimizer="bootstrap", adapter="json",
                                optimizer_settings={"max_bootstrapped_demos": 1, "max_labeled_demos": 1})
    report = run_optimize(docs_run, settings, student=lm, judge=lm)
    assert report.settings["metric"] == "semantic_f1"
    with Store(docs_run) as store:
        test_ids = [cid for cid, r in store.splits().items() if r.split == "test"]
    recall = report.scores["test", "retrieval_recall"]
    assert recall.n == len(test_ids) > 0 and 0.0 <= recall.low <= recall.mean <= recall.high <= 1.0
    assert recall.mean >= 0.5  # the scripted questions name their chunk's words: retrieval finds most
    assert ("test", "optimized") in report.scores and ("dev", "baseline") in report.scores
    console = Console(record=True, width=200)
    print_optimize(console, report)
    assert "retrieval recall of the gold chunk: " in console.export_text()
    program = load_optimized(docs_run)
    question = "How long does finished compost usually take?"
    with synthboot_lm(lm):
        out = program(question=question)
    assert out.answer and len(out.retrieved) == 3


def synthboot_lm(lm):
    import dspy

    from synthboot.lm.adapter import JSON_ADAPTER

    return dspy.context(lm=lm, adapter=JSON_ADAPTER)
