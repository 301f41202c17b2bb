"""A spec with `sources:` end to end on a scripted LM: grounded generation, resume, changed documents,
grounding checks, splits by document and coverage."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.sources import sentences
from synthboot.stages.leakage import find_leaks
from synthboot.status import candidate_outcomes, run_status
from synthboot.store import Store

DOCS = Path(__file__).parent / "data" / "docs"
MARKER = "The context does not say."
PLANTED = "Mauna Loa in Hawaii is the largest shield volcano on Earth."

SPEC = """
name: docs-qa
task: Questions a reader of the documents could ask, each answered from its context.
fields:
  context: {type: str, input: true, description: "The passage the question is about"}
  question: {type: str, input: true, description: "A question about the passage"}
  answer: {type: str, description: "The answer, from the passage only"}
sources:
  paths: ["docs/*"]
  max_tokens: 60
  overlap: 10
  min_tokens: 10
  per_chunk: 1
  question_types: {factual: 0.4, reasoning: 0.4, unanswerable: 0.2}
generate: {concurrency: 2}
verify: {lm_check: false}  # the scripted LM answers generation prompts only
split: {train: 0.4, dev: 0.2, test: 0.4, seed: 3}
"""


def _field(prompt: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", prompt, re.DOTALL)
    return match.group(1) if match else ""


def grounded_reply(prompt: str) -> str:
    """An answer taken from the context it was given; the lighthouse's answers are planted from another page."""
    context = _field(prompt, "context")
    body = context.split("\n\n", 1)[-1]
    qtype = _field(prompt, "question_type").split(":", 1)[0]
    # Questions as distinct as a real model's (the scripted ones would otherwise be near-duplicates).
    topic = " ".join(sorted(set(re.findall(r"[a-z]{6,}", body.lower())))[:6])
    if qtype == "unanswerable":
        item = {"question": f"Who first wrote about {topic}?", "answer": MARKER}
    else:
        fact = sentences(body)[-1]
        answer = PLANTED if "Korven" in context else fact
        item = {"question": f"Regarding {topic}, what holds?", "answer": answer}
    return json.dumps({"examples": [item]})


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "docs-qa.yaml").write_text(SPEC)
    return tmp_path


def _run(project: Path, lm):
    return synthboot.run(synthboot.load_spec(project / "docs-qa.yaml"), project / "run", lm=lm)


def test_sources_run_resume_change_and_split_by_document(project):
    lm = scripted_lm([grounded_reply], cycle=True)
    first = _run(project, lm)
    run_dir = project / "run"
    with Store(run_dir) as store:
        chunks = store.chunks()
        candidates = store.candidates(origin="lm")
        types = store.candidate_chunks()
        outcomes = candidate_outcomes(store)
        grounding = store.decisions("grounding")
        documents = store.candidate_documents()
        splits = {cid: r.split for cid, r in store.splits().items()}
    assert {c.document for c in chunks} == {f"docs/{p.name}" for p in DOCS.iterdir()}
    # one call per chunk task, every example's context the chunk text itself (never the LM's)
    assert first.lm_calls_made == first.generate.tasks_total == len(chunks) == len(candidates)
    chunk_text = {c.hash: c.text for c in chunks}
    for cand in candidates:
        qtype, hashes = types[cand.id]
        assert cand.fields["context"] == "\n\n".join(chunk_text[h] for h in hashes)
        assert cand.topic == documents[cand.id]
        assert len(hashes) >= (2 if qtype == "reasoning" else 1)
    assert {t for t, _ in types.values()} == {"factual", "reasoning", "unanswerable"}

    # planted ungrounded answers (the lighthouse's, taken from the volcano page) are all rejected
    planted = [c for c in candidates if c.fields["answer"] == PLANTED and "Mauna Loa" not in c.fields["context"]]
    assert planted
    assert all(outcomes[c.id][0] == "grounding" for c in planted), [outcomes[c.id] for c in planted]
    assert {grounding[c.id].reason for c in planted} <= {"ungrounded", "ungrounded_entity", "low_similarity"}
    kept = [c for c in candidates if outcomes[c.id][0] == "kept"]
    assert len(kept) >= len(candidates) - len(planted) - 3  # the grounded ones survive

    # splits grouped by document: no document feeds two splits, and nothing leaks
    by_doc: dict[str, set[str]] = {}
    for cid, split in splits.items():
        by_doc.setdefault(documents[cid], set()).add(split)
    assert all(len(s) == 1 for s in by_doc.values()) and len({s for v in by_doc.values() for s in v}) >= 2
    with Store(run_dir) as store:
        assert find_leaks(store, synthboot.load_spec(project / "docs-qa.yaml")) == []

    # coverage: the lighthouse kept only its unanswerable questions (its answers were planted); the
    # chunks that produced none are listed, and every other document produced kept examples
    status = run_status(run_dir)
    coverage = {d.document: d for d in status.coverage}
    lighthouse = coverage["docs/lighthouse.rst"]
    unanswerable = [c for c in candidates if documents[c.id] == "docs/lighthouse.rst" and types[c.id][0] == "unanswerable"]
    assert lighthouse.kept == len(unanswerable) < len(lighthouse.chunks)
    assert [ch for ch in lighthouse.chunks if ch.generated and not ch.kept]
    assert all(d.kept > 0 for name, d in coverage.items() if name != "docs/lighthouse.rst")
    assert status.funnel.grounded == status.funnel.rule_valid - sum(status.funnel.rejected["grounding"].values())

    # resume: nothing new to do, zero LM calls
    again = _run(project, scripted_lm([]))
    assert again.lm_calls_made == 0 and again.generate.tasks_run == 0

    # one document changed: only the tasks over its changed chunks run again
    tea = project / "docs" / "tea.md"
    tea.write_text(tea.read_text().replace("six months", "eight months"))
    changed = _run(project, scripted_lm([grounded_reply], cycle=True))
    with Store(run_dir) as store:
        now = {c.hash: c for c in store.chunks()}
        new_hashes = set(now) - set(chunk_text)
        assert new_hashes and all(now[h].document == "docs/tea.md" for h in new_hashes)
        fresh = [c for c in store.candidates(origin="lm") if c.id not in {x.id for x in candidates}]
        links = store.candidate_chunks()
    assert changed.generate.tasks_run == changed.lm_calls_made == len(fresh) >= 1
    assert all(set(links[c.id][1]) & new_hashes for c in fresh)
    assert all(c.topic == "docs/tea.md" for c in fresh)
    # the examples of the old text stay in the store, rejected as stale; every other kept one stays kept
    with Store(run_dir) as store:
        after = candidate_outcomes(store)
    old_text = [c for c in candidates if not set(links[c.id][1]) <= set(now)]
    assert old_text and all(after[c.id] == ("grounding", "stale_chunk") for c in old_text)
    assert all(after[c.id][0] == "kept" for c in kept if c not in old_text)


def test_status_and_report_show_source_coverage(project):
    from rich.console import Console

    from synthboot.cli.render import print_status
    from synthboot.report import build_html, collect

    _run(project, scripted_lm([grounded_reply], cycle=True))
    console = Console(record=True, width=300)
    print_status(console, run_status(project / "run"))
    text = console.export_text()
    assert "sources: 5 documents" in text and "grounded" in text
    html = build_html(collect(project / "run"))
    assert 'id="coverage"' in html and "docs/lighthouse.rst" in html and "(not generated)" not in html


def test_estimate_plans_one_call_per_chunk_with_the_chunks_in_the_prompts(project):
    from synthboot.estimate import estimate_run
    from synthboot.sources import load_chunks

    spec = synthboot.load_spec(project / "docs-qa.yaml")
    chunks = load_chunks(spec)
    est = estimate_run(spec)
    generate = est.stages[0]
    assert generate.calls == len(chunks)
    # the prompts hold the chunk text: more prompt tokens than the documents have words
    assert generate.prompt_tokens > sum(c.tokens for c in chunks)
    assert estimate_run(spec, limit=3).stages[0].calls == 3
