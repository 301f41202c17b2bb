"""The real command line, run as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import EXAMPLE_SPEC, TINY_SPEC

SYNTHBOOT = [sys.executable, "-m", "synthboot.cli"]


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNTHBOOT, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


def test_run_status_export_on_embedded_model(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    run_dir = tmp_path / "run"
    first = cli("run", str(spec), "--out", str(run_dir), "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert "2 made, 0 answered from the store" in first.stdout  # one candidate per topic, one call each
    status = cli("status", str(run_dir))
    assert status.returncode == 0
    for word in ("generated", "parsed", "schema-valid", "rule-valid", "unique", "kept", "train", "dev", "test"):
        assert word in status.stdout
    again = cli("run", str(spec), "--out", str(run_dir), "--limit", "2")
    assert again.returncode == 0 and "0 made" in again.stdout
    for fmt in ("jsonl", "parquet", "hf"):
        exported = cli("export", str(run_dir), "--format", fmt, "--to", str(tmp_path / fmt))
        assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "jsonl" / "candidates.jsonl").read_text().splitlines()]
    assert {r["origin"] for r in rows} >= {"lm", "seed"}
    assert (tmp_path / "parquet" / "dev.parquet").exists()
    assert (tmp_path / "hf" / "dataset_dict.json").exists()


@pytest.mark.parametrize("mutation, field", [
    (lambda s: s.replace("per_call: 2", "per_call: lots"), "generate.per_call"),
    (lambda s: s + "mystery: 1\n", "mystery"),
    (lambda s: s.replace("train: 0.34", "train: 0.9"), "split"),
    (lambda s: s + "  - {name: bad, check: nowhere.module:fn}\n".replace("  - ", "rules2: ") , "rules2"),
])
def test_bad_spec_exits_2_with_one_line(tmp_path, mutation, field):
    spec = tmp_path / "bad.yaml"
    spec.write_text(mutation(TINY_SPEC))
    result = cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in result.stderr
    assert str(spec) in lines[0]


def test_bad_arguments_exit_2(tmp_path):
    assert cli("run", str(EXAMPLE_SPEC), "--out", str(tmp_path), "--limit", "0").returncode == 2
    assert cli("status", str(tmp_path / "nothing")).returncode == 2
    assert cli("export", str(tmp_path / "nothing")).returncode == 2


def test_init_writes_a_spec_that_loads(tmp_path):
    result = cli("init", str(tmp_path / "mine.yaml"))
    assert result.returncode == 0
    written = (tmp_path / "mine.yaml").read_text()
    assert written.split("\nname:", 1)[1] == EXAMPLE_SPEC.read_text().split("\nname:", 1)[1]  # the example's body
    assert f"synthboot run {tmp_path / 'mine.yaml'}" in written  # its own path in the comment
    assert cli("init", str(tmp_path / "mine.yaml")).returncode == 2  # never overwrites


def test_sigkill_mid_generation_resumes_without_repeating_calls(tmp_path):
    """Kill -9 a real run while it generates, resume, and check nothing finished was redone or lost."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC.replace("per_topic: 2, per_call: 2", "per_topic: 3, per_call: 1")
                    .replace("concurrency: 2", "concurrency: 1"))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([*SYNTHBOOT, "run", str(spec), "--out", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db_path = run_dir / "synthboot.db"
    deadline = time.monotonic() + 240
    calls_before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=1) as db:
                    calls_before = db.execute("SELECT COUNT(*) FROM lm_calls").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        if calls_before >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db_path) as db:
        keys_before = {r[0] for r in db.execute("SELECT key FROM lm_calls")}
        cands_before = {r for r in db.execute("SELECT id, task_key, item_index, fields FROM candidates")}
    assert len(keys_before) >= 2

    resumed = cli("run", str(spec), "--out", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db_path) as db:
        keys_after = {r[0] for r in db.execute("SELECT key FROM lm_calls")}
        cands_after = {r for r in db.execute("SELECT id, task_key, item_index, fields FROM candidates")}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    made = int(resumed.stdout.split("LM calls this run: ")[1].split(" made")[0])
    assert keys_before <= keys_after and cands_before <= cands_after  # nothing stored was lost
    assert made == len(keys_after) - len(keys_before)  # only calls not finished before the kill ran
    assert len(keys_after) == 6  # 2 topics x 3 batches, each exactly once
