"""Real `synthboot` processes for the reliability tests: start, signal, inspect their stores."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# A spec for the loopback server: many small batches so a run takes a few seconds of real HTTP
# work, and a judge so the kill loop also lands in a second LM stage.
LOOPBACK_SPEC = """
name: loopback-qa
task: Question-answer pairs for a quiz about rivers, coasts and mountains.
fields:
  question: {type: str, description: "A clear, specific question", input: true, max_length: 200}
  answer: {type: str, description: "A concise, factual answer", max_length: 300}
  difficulty: {type: enum, values: [easy, medium, hard], description: "easy, medium, or hard"}
seeds:
  - {question: "Which river flows through Cairo?", answer: "The Nile flows through Cairo.", difficulty: easy}
  - {question: "What forms a fjord?", answer: "A glacier carving a deep valley that the sea later floods.", difficulty: medium}
topics: [rivers, coasts, mountains, lakes, glaciers]
generate: {per_topic: PER_TOPIC, per_call: 2, max_tokens: 400, concurrency: 2}
rules:
  - {name: answer_too_short, check: min_length, field: answer, value: 10}
dedup: {semantic: false}
judge: {enabled: true}
# The server's made-up answers never agree with a re-prediction: verify would reject them all and
# starve the judge these tests follow (the verify stage has its own tests).
verify: {enabled: false}
split: {train: 0.2, dev: 0.6, test: 0.2, seed: 42}
"""


def loopback_spec(path: Path, per_topic: int = 4, extra: str = "") -> Path:
    path.write_text(LOOPBACK_SPEC.replace("PER_TOPIC", str(per_topic)) + extra)
    return path


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out.update({"HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"}, **extra)
    return out


def run_args(spec: Path, out: Path, base_url: str | None = None, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "synthboot.cli", "run", str(spec), "--out", str(out)]
    if base_url:
        args += ["--lm", "openai/fake", "--api-base", str(base_url)]
    return args + list(extra)


def _interruptible() -> None:
    # A command run in the background of a non-interactive shell (`make test &`, nohup, some CI
    # runners) starts with SIGINT ignored, and a child inherits that across exec: Python then never
    # installs its Ctrl-C handler and the signal tests' SIGINT did nothing. A user's Ctrl-C reaches a
    # foreground process whose SIGINT is the default: give the child that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=kwargs.pop("env", None) or env(), preexec_fn=_interruptible, **kwargs)


def run(args: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=kwargs.pop("env", None) or env(), **kwargs)


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None,
             every: float = 0.02) -> bool:
    """Poll until `condition()`; False on timeout or when `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(every)
    return False


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(run_dir / "synthboot.db", timeout=30)


def integrity(run_dir: Path) -> str:
    """`PRAGMA integrity_check` of the run's store ('ok' when there is no store yet: nothing to lose)."""
    if not (run_dir / "synthboot.db").exists():
        return "ok"
    with db(run_dir) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def rows(run_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not (run_dir / "synthboot.db").exists():
        return []
    conn = db(run_dir)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the store is still being created
        return []
    finally:
        conn.close()


def candidates_by_slot(run_dir: Path) -> dict[tuple[str, int], str]:
    """Generated candidates keyed by (task, index in its batch) -> their fields as JSON."""
    return {(k, i): json.dumps(json.loads(f) if f else None, sort_keys=True) for k, i, f in
            rows(run_dir, "SELECT task_key, item_index, fields FROM candidates WHERE origin = 'lm'")}
