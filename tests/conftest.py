"""Shared fixtures. Integration tests run the real embedded model on small work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SPEC = REPO / "examples" / "python-qa.yaml"
DATA = Path(__file__).resolve().parent / "data"  # small data the tests carry (see data/README.md)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# A spec small enough for a few real calls of the embedded model (about 10 s per call).
TINY_SPEC = """
name: tiny-qa
task: Question-answer pairs for a Python programming quiz. Answers are concise and factual.
fields:
  question: {type: str, description: "A clear, specific question", input: true, max_length: 200}
  answer: {type: str, description: "A concise, factual answer", max_length: 300}
  difficulty: {type: enum, values: [easy, medium, hard], description: "easy, medium, or hard"}
seeds:
  - {question: "What is the difference between a list and a tuple in Python?", answer: "Lists are mutable while tuples are immutable.", difficulty: easy}
  - {question: "What is a decorator in Python?", answer: "A function that takes a function and returns an extended one.", difficulty: medium}
topics: [file-io, concurrency]
generate: {per_topic: 2, per_call: 2, max_tokens: 400, concurrency: 2}
rules:
  - {name: answer_too_short, check: min_length, field: answer, value: 10}
split: {train: 0.34, dev: 0.33, test: 0.33, seed: 42}
# Off in the shared fixture: its tests are about other stages, and scripted replies meant for the
# generator cannot answer the verifier. tests/test_verify.py runs verify (real model included).
verify: {enabled: false}
"""


def t0_prompts(n: int = 600) -> list[str]:
    """Real T0 prompts (the same passages under different templates: natural near-duplicates)."""
    import gzip
    import itertools
    import json

    with gzip.open(DATA / "t0_prompts_600.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line)["prompt"] for line in itertools.islice(fh, n)]


def tiny_spec(*, per_topic: int = 2, per_call: int = 2) -> str:
    """TINY_SPEC with other batch sizes (scripted-LM tests that script a reply per call)."""
    return TINY_SPEC.replace("per_topic: 2", f"per_topic: {per_topic}").replace("per_call: 2", f"per_call: {per_call}")



@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """All user state goes under a temporary SYNTHBOOT_HOME."""
    monkeypatch.setenv("SYNTHBOOT_HOME", str(tmp_path / "home"))


@pytest.fixture
def tiny_spec_path(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run of the tiny spec on the real embedded model (2 LM calls), shared read-only.

    Tests that change a run copy it first with `copy_run`.
    """
    import synthboot

    base = tmp_path_factory.mktemp("tiny-run")
    spec_path = base / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    synthboot.run(spec_path, base / "run")
    return base / "run"


@pytest.fixture
def copy_run(tmp_path):
    def _copy(run_dir: Path) -> Path:
        target = tmp_path / f"copy-{run_dir.name}"
        shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("run.lock"))
        return target
    return _copy
