"""The real command line, run as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
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


def _scripted_tiny_run(run_dir: Path) -> None:
    """A finished run of the tiny spec, made in-process with the scripted LM (no model call)."""
    import synthboot
    from synthboot.lm.scripted import scripted_lm

    rows = [{"question": f"How does {w} work in Python file handling?", "answer": f"The {w} step is explained here.",
             "difficulty": "easy"} for w in ("seek", "flush", "truncate", "readline")]
    replies = [json.dumps({"examples": rows[:2]}), json.dumps({"examples": rows[2:]})]
    synthboot.run(synthboot.parse_spec(TINY_SPEC), run_dir, lm=scripted_lm(replies))


@pytest.mark.parametrize("change, named", [
    (lambda s: s.replace("question:", "prompt:").replace("{question:", "{prompt:"), "prompt, question"),
    (lambda s: s.replace("values: [easy, medium, hard]", "values: [easy, medium, hard, expert]"), "difficulty"),
    (lambda s: s.replace("task: Question-answer pairs for a Python", "task: Question-answer pairs for a Rust"),
     "a different task"),
])
def test_a_spec_of_another_task_is_refused_in_an_existing_run(tmp_path, change, named):
    """Issue 12, bug 4: old candidates silently became schema errors of the new task."""
    import synthboot

    run_dir = tmp_path / "run"
    _scripted_tiny_run(run_dir)
    before = sqlite3.connect(run_dir / "synthboot.db").execute("SELECT COUNT(*) FROM specs").fetchone()
    other = tmp_path / "other.yaml"
    other.write_text(change(TINY_SPEC))
    result = cli("run", str(other), "--out", str(run_dir), "--limit", "2")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "--force" in lines[0] and "Traceback" not in result.stderr
    # Nothing was written: the stored spec is still the first one.
    assert sqlite3.connect(run_dir / "synthboot.db").execute("SELECT COUNT(*) FROM specs").fetchone() == before
    assert synthboot.run_status(run_dir).spec.task == synthboot.parse_spec(TINY_SPEC).task


def test_force_adds_another_task_and_a_changed_threshold_needs_no_force(tmp_path):
    import synthboot
    from synthboot.lm.scripted import scripted_lm

    run_dir = tmp_path / "run"
    _scripted_tiny_run(run_dir)
    # Re-filtering (a constraint or rule changed) is the same dataset: no refusal, no LM call.
    stricter = synthboot.parse_spec(TINY_SPEC.replace("max_length: 300", "max_length: 100"))
    assert synthboot.run(stricter, run_dir, lm=scripted_lm([])).lm_calls_made == 0
    other = synthboot.parse_spec(TINY_SPEC.replace("values: [easy, medium, hard]", "values: [easy, medium, hard, x]"))
    with pytest.raises(synthboot.SynthbootError, match="different fields"):
        synthboot.run(other, run_dir, lm=scripted_lm([]))
    synthboot.run(other, run_dir, lm=scripted_lm([]), force=True)
    assert synthboot.run_status(run_dir).spec.fields["difficulty"].values == ["easy", "medium", "hard", "x"]


# -- issue 12, bug 8 ---------------------------------------------------------------------------------

def as_reader(args: list[str]) -> list[str]:
    """`args` run by someone who cannot write the run directory. Root ignores permission bits, so as
    root the command runs without the capabilities that let it (CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return args
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a directory cannot be made read-only")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *args]


def test_reading_commands_work_on_a_read_only_run(tmp_path):
    run_dir = tmp_path / "run"
    _scripted_tiny_run(run_dir)
    for path in [run_dir, *run_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        env = {**os.environ, "COLUMNS": "200"}

        def reader(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(as_reader([*SYNTHBOOT, *args]), capture_output=True, text=True, env=env, timeout=300)

        status = reader("status", str(run_dir))
        assert status.returncode == 0, status.stderr
        assert "kept" in status.stdout
        for fmt in ("jsonl", "hf"):
            exported = reader("export", str(run_dir), "--format", fmt, "--to", str(tmp_path / fmt))
            assert exported.returncode == 0, exported.stderr
        assert len((tmp_path / "jsonl" / "candidates.jsonl").read_text().splitlines()) == 6  # 4 generated + 2 seeds
        # The default target is inside the run directory: a clear one-line error pointing at --to.
        default = reader("export", str(run_dir))
        assert default.returncode == 2 and "--to" in default.stderr and len(default.stderr.strip().splitlines()) == 1
        report = reader("report", str(run_dir), "--to", str(tmp_path / "report.html"))
        assert report.returncode == 0, report.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == ["run.lock", "synthboot.db"]  # nothing written there
    finally:
        for path in [run_dir, *run_dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_init_creates_a_missing_folder(tmp_path):
    import synthboot

    target = tmp_path / "new" / "specs" / "task.yaml"
    result = cli("init", str(target))
    assert result.returncode == 0, result.stderr
    assert synthboot.load_spec(target).topics


def test_unknown_prices_are_unknown_not_zero(tmp_path):
    import synthboot
    from synthboot.lm.scripted import scripted_lm
    from synthboot.report import write_report

    rows = [{"question": f"How does {w} work in Python?", "answer": f"The {w} call is explained here.",
             "difficulty": "easy"} for w in ("seek", "flush", "truncate", "readline")]
    run_dir = tmp_path / "run"
    synthboot.run(synthboot.parse_spec(TINY_SPEC), run_dir, lm=scripted_lm(
        [json.dumps({"examples": rows[:2]}), json.dumps({"examples": rows[2:]})], name="openai/no-such-model-xyz"))
    status = cli("status", str(run_dir))
    assert "cost unknown (2 calls to a model without a known price)" in status.stdout, status.stdout
    assert "$0.0000" not in status.stdout
    html = write_report(run_dir, tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<div class="card"><b>unknown</b>cost</div>' in html


def test_status_and_export_during_a_live_run(tmp_path):
    run_dir = tmp_path / "run"
    _scripted_tiny_run(run_dir)
    holder = subprocess.Popen([*SYNTHBOOT[:1], "-c", "import sys, time\nfrom synthboot.store import Store\n"
                               "store = Store(sys.argv[1], lock=True)\nprint('locked', flush=True)\ntime.sleep(300)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        status = cli("status", str(run_dir))
        assert status.returncode == 0 and f"running (pid {holder.pid})" in status.stdout, status.stdout
        exported = cli("export", str(run_dir), "--to", str(tmp_path / "out"))
        assert exported.returncode == 0
        assert f"a run is in progress on {run_dir} (pid {holder.pid})" in exported.stderr
        assert "may be partial" in exported.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert "running" not in cli("status", str(run_dir)).stdout  # the lock went with the process
