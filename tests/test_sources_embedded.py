"""The `rag` template's spec with `sources:` on the real embedded model (two LM calls), resumed."""

from __future__ import annotations

import shutil
from pathlib import Path

import synthboot
from synthboot.status import run_status
from synthboot.store import Store

TEMPLATES = Path(synthboot.__file__).parent / "templates"


def test_rag_template_runs_on_the_embedded_model(tmp_path):
    shutil.copy(TEMPLATES / "rag.yaml", tmp_path / "docs-qa.yaml")
    shutil.copytree(TEMPLATES / "rag-docs", tmp_path / "rag-docs")
    spec = synthboot.load_spec(tmp_path / "docs-qa.yaml")
    # --limit 4 with per_chunk 2: two chunks, one call each, from two documents (round-robin)
    first = synthboot.run(spec, tmp_path / "run", limit=4)
    assert first.generate.tasks_run == 2
    with Store(tmp_path / "run") as store:
        chunks = {c.hash: c for c in store.chunks()}
        links = store.candidate_chunks()
        candidates = store.candidates(origin="lm")
        grounding = store.decisions("grounding")
    assert len({c.document for c in chunks.values()}) == 4
    assert len({c.topic for c in candidates}) == 2
    for cand in candidates:
        if cand.fields is not None:  # the context is the chunk text, whatever the model wrote
            assert cand.fields["context"] == "\n\n".join(chunks[h].text for h in links[cand.id][1])
    stages = {s.stage: s for s in first.stages}
    assert stages["grounding"].decided == stages["validate"].kept  # every valid example was checked
    assert all(d.reason or d.kept for d in grounding.values())
    status = run_status(tmp_path / "run")
    assert status.calls.by_purpose["generate"] == 2  # (verify may add calls for what passed grounding)
    assert status.coverage is not None and sum(len(d.chunks) for d in status.coverage) == len(chunks)
    assert sum(d.generated for d in status.coverage) == len(candidates)
    again = synthboot.run(spec, tmp_path / "run", limit=4)
    assert again.lm_calls_made == 0 and again.generate.tasks_run == 0
