"""`synthboot check`: synthetic data measured against real labelled rows.

The real rows are a hand-written set (tests/data/check_intents_real.jsonl: 3 intents x 8
utterances). Runs are built by a scripted LM so the synthetic set is exactly what each test
needs; the embeddings are the real packaged MiniLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synthboot
from synthboot.check import metrics as cm
from synthboot.check import check_run, compare, stored_checks
from synthboot.lm.scripted import scripted_lm
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.store import Store

REAL = Path(__file__).parent / "data" / "check_intents_real.jsonl"

INTENT_SPEC = """
name: tiny-intents
task: Requests a user says to a home voice assistant, each labelled with its intent.
fields:
  utterance: {type: str, description: "What the user says", input: true, max_length: 200}
  intent: {type: enum, values: [weather, set_alarm, play_music], description: "The user's intent"}
seeds:
  - {utterance: "what is the weather going to be like in london", intent: weather}
  - {utterance: "set an alarm to wake me at 6", intent: set_alarm}
  - {utterance: "play my favourite songs", intent: play_music}
topics: [home assistant requests]
generate: {per_topic: 24, per_call: 24, max_tokens: 4000}
dedup: {semantic: false, minhash: false}
split: {train: 0.8, dev: 0.1, test: 0.1, seed: 1}
"""

OFF_TOPIC = [
    "simmer the onions slowly until they turn golden brown",
    "prune the rose bushes before the first frost",
    "the committee approved the annual budget report",
    "replace the bicycle chain when it starts to skip",
    "knead the dough for ten minutes on a floured board",
    "the museum opens a new exhibition of roman coins",
]

SWAP = {"weather": "set_alarm", "set_alarm": "play_music", "play_music": "weather"}


def real_rows() -> list[dict]:
    return [json.loads(line) for line in REAL.read_text().splitlines()]


def make_run(tmp_path: Path, items: list[dict], name: str = "run") -> Path:
    spec_path = tmp_path / f"{name}.yaml"
    # These runs are built to hold given synthetic sets (wrong labels included): a verify stage,
    # where the spec has one, would ask this scripted generator to re-predict them. Off here.
    spec_path.write_text(INTENT_SPEC + ("verify: {enabled: false}\n" if "verify" in Spec.model_fields else ""))
    reply = json.dumps({"examples": items})
    synthboot.run(synthboot.load_spec(spec_path), tmp_path / name, lm=scripted_lm([reply], cycle=True))
    return tmp_path / name


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "intents.yaml"
    path.write_text(INTENT_SPEC)
    return TaskSchema.from_spec(synthboot.load_spec(path))


SEEDS = [{"utterance": "what is the weather going to be like in london", "intent": "weather"},
         {"utterance": "set an alarm to wake me at 6", "intent": "set_alarm"},
         {"utterance": "play my favourite songs", "intent": "play_music"}]


def test_coverage_and_precision_are_exact_on_points_with_known_distances():
    # Real points on a circle at 0, 10, 20 degrees (k=1 radius: 10 degrees), one synthetic point
    # at 5 degrees (inside both neighbours' radius) and one at 90 degrees (outside every radius).
    def at(deg):
        return [np.cos(np.radians(deg)), np.sin(np.radians(deg))]

    real = np.array([at(0), at(10), at(20)], dtype=np.float32)
    synth = np.array([at(5), at(90)], dtype=np.float32)
    m = cm.coverage_precision(real, synth, k=1)
    assert m.k == 1
    assert m.coverage == pytest.approx(2 / 3)  # 0 and 10 degrees have the 5-degree point within 10 degrees
    assert m.precision == pytest.approx(1 / 2)
    assert cm.coverage_precision(real, synth[:0], k=1).coverage == 0.0


def test_copied_real_rows_cover_and_agree(schema):
    real = real_rows()
    result = compare(schema, real, real, SEEDS)
    assert result.coverage == 1.0 and result.precision == 1.0
    (label,) = result.labels
    assert label.field == "intent" and label.real_rows == 24 and label.synthetic_rows == 24
    assert label.fidelity >= 0.9 and label.real_agreement >= 0.9
    assert label.combined_accuracy >= label.seeds_accuracy
    assert label.synthetic_accuracy == 1.0  # trained on the very rows it is scored on


def test_swapped_labels_get_low_fidelity_and_hurt_the_learner(schema):
    real = real_rows()
    swapped = [{**r, "intent": SWAP[r["intent"]]} for r in real]
    good = compare(schema, real, real, SEEDS).labels[0]
    bad = compare(schema, real, swapped, SEEDS).labels[0]
    # Cross-fitted: each copy is scored by a classifier that never saw the real row it copies.
    assert bad.fidelity <= 0.1 < 0.9 <= good.fidelity
    assert bad.combined_accuracy < bad.seeds_accuracy
    assert bad.synthetic_accuracy <= 0.1


def test_off_topic_synthetic_set_has_low_coverage_and_precision(schema):
    real = real_rows()
    off = [{"utterance": u, "intent": "weather"} for u in OFF_TOPIC]
    result = compare(schema, real, off, SEEDS)
    assert result.coverage <= 0.1 and result.precision <= 0.2
    copied = compare(schema, real, real[::3], SEEDS)  # every third real row
    assert copied.coverage > result.coverage and copied.precision == 1.0


def test_check_run_stores_its_result_and_the_report_shows_it(tmp_path):
    run_dir = make_run(tmp_path, real_rows())
    result = check_run(run_dir, REAL)
    assert result.synthetic_rows == 24 and result.seed_rows == 3 and result.real_rows == 24
    assert result.coverage == 1.0 and result.labels[0].fidelity >= 0.9
    with Store(run_dir) as store:
        (stored,) = stored_checks(store)
    assert stored == result and stored.real_file == str(REAL)

    from synthboot.report import build_html, collect

    html = build_html(collect(run_dir))
    assert 'id="check"' in html and "Against real data" in html and str(REAL) in html


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthboot.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_cli_check_prints_numbers_and_exit_codes(tmp_path):
    off = [{"utterance": u, "intent": i} for u, i in zip(OFF_TOPIC, ["weather", "set_alarm", "play_music"] * 2)]
    run_dir = make_run(tmp_path, off)
    done = cli("check", str(run_dir), "--real", str(REAL), "--k", "3")
    assert done.returncode == 0, done.stderr
    assert "24 real rows, 6 kept synthetic examples, 3 seeds" in done.stdout
    assert "coverage 0.0%" in done.stdout and "k=3" in done.stdout
    assert "intent: label fidelity" in done.stdout and "intent: accuracy on 24 real rows" in done.stdout
    with Store(run_dir) as store:
        assert len(store.checks()) == 1

    missing = cli("check", str(run_dir), "--real", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "file not found" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"utterance": "play jazz", "intent": "play_music"}\n{"intent": "weather"}\n')
    no_input = cli("check", str(run_dir), "--real", str(bad))
    assert no_input.returncode == 2 and "line 2" in no_input.stderr and "utterance" in no_input.stderr
    assert len(no_input.stderr.strip().splitlines()) == 1
    not_a_run = cli("check", str(tmp_path / "nothing"), "--real", str(REAL))
    assert not_a_run.returncode == 2 and "not a synthboot run" in not_a_run.stderr
    with Store(run_dir) as store:
        assert len(store.checks()) == 1  # failed checks store nothing


def test_degenerate_sets_give_none_or_a_constant_not_an_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # One training label: the learner predicts it for everything.
    assert cm.accuracy(x[:3], ["a"] * 3, x[3:], ["a", "b", "a"]) == pytest.approx(2 / 3)
    assert cm.accuracy(x[:0], [], x, ["a"] * 6) is None
    # Fidelity needs two labels and a few real rows to cross-fit.
    assert cm.label_fidelity(x, ["a"] * 6, x, ["a"] * 6).synthetic is None
    assert cm.label_fidelity(x[:3], ["a", "b", "a"], x, ["a"] * 6).synthetic is None
    assert cm.coverage_precision(x[:1], x, k=5).coverage is None  # no neighbour to set a radius
