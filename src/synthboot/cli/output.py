"""What the command line prints besides tables: one progress display, quiet libraries, JSON output.

Kept apart from `cli.py` so the commands stay argument parsing plus one library call each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from synthboot.progress import progress_printer

# Version of the JSON documents `--json` prints (docs/json.md). Bump on any change a consumer could
# notice: a removed or renamed key, a changed meaning. Added keys keep the version.
JSON_SCHEMA_VERSION = 1

# Loggers that speak during a run: DSPy's optimizers and evaluators, LiteLLM's request notes, the
# HTTP client, Ray and the embedders. Quiet (errors only) unless `-v`.
_NOISY_LOGGERS = ("dspy", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx", "httpcore", "openai",
                  "ray", "sentence_transformers", "datasets", "urllib3", "filelock", "optuna")


_verbose = False


def set_verbosity(verbose: bool) -> None:
    """Silence DSPy, LiteLLM and tqdm (their output interleaves with our progress display) unless verbose."""
    global _verbose
    _verbose = verbose
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        os.environ.pop("TQDM_DISABLE", None)
        logging.disable(logging.NOTSET)
        return
    # tqdm reads TQDM_* environment variables as defaults for every bar it creates (DSPy's evaluators, HF).
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # DSPy sets its logger back to INFO when it is imported (later, inside a command): drop every
    # record below ERROR process-wide instead. synthboot's own output goes through rich, not logging.
    logging.disable(logging.WARNING)
    if "litellm" in sys.modules:  # already imported: its own switch for the "Give Feedback" banners
        setattr(sys.modules["litellm"], "suppress_debug_info", True)


def quiet_litellm() -> None:
    """LiteLLM prints help banners on errors unless told not to; call after it is imported."""
    if os.environ.get("TQDM_DISABLE") == "1" and "litellm" in sys.modules:
        setattr(sys.modules["litellm"], "suppress_debug_info", True)


@contextmanager
def library_prints() -> Iterator[None]:
    """Drop what libraries print() to stdout (DSPy's optimizers do) unless verbose: stdout is our tables."""
    if _verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class Display:
    """One progress display for a long command: bars for counted steps and notes between them.

    On a terminal the notes print above rich's live bars; elsewhere (CI, pipes) both are plain lines
    in one format, `stage: note` and `stage: done/total (rate, eta)`, so logs read top to bottom.
    """

    def __init__(self, console: Console, update: Any):
        self.console, self._update = console, update

    def __call__(self, stage: str, done: int, total: int) -> None:
        quiet_litellm()
        self._update(stage, done, total)

    def note(self, message: str) -> None:
        quiet_litellm()
        self.console.print(f"· {message}" if self.console.is_terminal else message, highlight=False, markup=False,
                           soft_wrap=not self.console.is_terminal)


@contextmanager
def display(console: Console) -> Iterator[Display]:
    with progress_printer(console) as update:
        yield Display(console, update)


# -- JSON output ---------------------------------------------------------------------------------

def to_jsonable(value: Any) -> Any:
    """Dataclasses, Counters, paths and pydantic models as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Counter):
        return {str(k): v for k, v in value.most_common()}
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, tuple) else "/".join(map(str, k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def print_json(console: Console, kind: str, body: dict[str, Any]) -> None:
    """One JSON document on stdout: {"schema_version": N, "kind": ..., ...}."""
    document = {"schema_version": JSON_SCHEMA_VERSION, "kind": kind, **to_jsonable(body)}
    console.file.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    console.file.flush()


def status_document(status: Any) -> dict[str, Any]:
    """`synthboot status --json` (kind "status"); fields in docs/json.md."""
    f = status.funnel
    judge_on = bool(status.spec and status.spec.judge.enabled)
    d = status.diversity
    return {
        "run_dir": str(status.run_dir),
        "spec_name": status.spec.name if status.spec else None,
        "complete": not f.pending and not status.tasks_failed,
        "funnel": {"generated": f.generated, "parsed": f.parsed, "schema_valid": f.schema_valid,
                   "rule_valid": f.rule_valid, "unique": f.unique, "verified": f.verified,
                   "judged_ok": f.judged_ok if judge_on else None,
                   "kept": f.kept, "pending": f.pending, "seeds": f.seeds},
        "rejected": {stage: dict(counts.most_common()) for stage, counts in f.rejected.items()},
        "dedup_by_layer": status.dedup_by_layer,
        "splits": {name: f.splits.get(name, 0) for name in ("train", "dev", "test")},
        "calls": to_jsonable(status.calls),
        "tasks_failed": status.tasks_failed,
        "topup": status.topup,
        "diversity": None if d is None else {
            "total": d.total, "distributions": to_jsonable(d.distributions), "targets": to_jsonable(d.targets),
            "entropy": d.entropy, "distinct": d.distinct, "divergence": d.divergence,
            "nn_distance": d.nn_distance, "near_seed_rate": d.near_seed_rate, "warnings": list(d.warnings)},
        "optimization": [optimize_document(r) for r in status.optimization],
    }


def optimize_document(report: Any) -> dict[str, Any]:
    """One optimize run: its settings' key facts and each score with its interval."""
    scores = {}
    for key, score in (report.scores or {}).items():
        scores["/".join(key) if isinstance(key, tuple) else str(key)] = to_jsonable(score)
    recorded = report.settings or {}
    return {"run_id": report.run_id, "round": report.round, "optimizer": recorded.get("optimizer"),
            "metric": recorded.get("metric"), "program": recorded.get("program"), "scores": scores}
