"""Fault scenarios against the loopback server: inject, run, resume, and count what was lost.

Used by tests/test_faults.py (one test per scenario) and bench/faults.py (the summary table).
Each scenario runs the pipeline in this process against a real HTTP server that injects one fault
class, then resumes it against a healthy server, and compares every candidate with an
uninterrupted reference run: `lost` counts the reference's candidates missing at the end.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import synthboot
from synthboot.errors import SynthbootError
from tests.support.openai_server import fingerprint, free_port, serve
from tests.support.procs import candidates_by_slot, integrity, loopback_spec, rows

# Short client timeouts and few retries keep each scenario to seconds; the policy is the same.
SPEC_EXTRA_GENERATE = {"timeout_s": 1.0, "max_retries": 2}


def _is_judge(body: dict) -> bool:
    return "quality_score" in json.dumps(body.get("messages") or [])


class FailOneCall:
    """Fail the first call the server sees, `times` attempts in a row (its retries included)."""

    def __init__(self, fault: str, times: int):
        self.fault, self.times = fault, times
        self.target: str | None = None
        self.failed = 0

    def __call__(self, n: int, body: dict) -> str | None:
        self.target = self.target or fingerprint(body)
        if fingerprint(body) == self.target and self.failed < self.times:
            self.failed += 1
            return self.fault
        return None


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str                                # the fault name the server counts
    script: list[str] | Callable[[int, dict], str | None] | None
    expect: str                               # 'completes', 'incomplete' (tasks failed) or 'stops'
    refused: bool = False                     # point the run at a port nothing listens on
    note: str = ""


SCENARIOS = [
    Scenario("429 without Retry-After", "429", ["429", "429"], "completes"),
    Scenario("429 with Retry-After: 1", "429", ["429:1"], "completes"),
    Scenario("500", "500", ["500", "500"], "completes"),
    Scenario("502", "502", ["502"], "completes"),
    Scenario("503", "503", ["503"], "completes"),
    Scenario("hang past the client timeout", "hang", ["hang:4"], "completes"),
    Scenario("connection dropped", "close", ["close"], "completes"),
    Scenario("slow drip (under the read timeout)", "drip", ["drip:0.2"], "completes"),
    Scenario("slow drip (past the read timeout)", "drip", ["drip:2"], "completes"),
    Scenario("truncated JSON body", "truncated", ["truncated"], "incomplete",
             note="not retried by DSPy (the request may have been served); the next run retries it"),
    Scenario("wrong-shape JSON body", "wrong_shape", ["wrong_shape"], "incomplete",
             note="an empty reply is never stored; the next run retries it"),
    Scenario("empty body", "empty", ["empty"], "incomplete"),
    Scenario("wrong-shape LM content", "bad_content", ["bad_content"], "completes",
             note="a real answer that does not parse: kept as a parse_error candidate, not lost"),
    Scenario("retries exhausted (one call: 500 x3)", "500", FailOneCall("500", 3), "incomplete"),
    Scenario("server failing every call", "503", lambda n, body: "503", "stops"),
    Scenario("judge failing every call", "503", lambda n, body: "503" if _is_judge(body) else None, "stops"),
    Scenario("connection refused", "refused", None, "stops", refused=True),
]


@dataclass
class Outcome:
    scenario: str
    expect: str
    injected: int
    first_run: str
    message: str = ""
    attempt_failures: Counter = field(default_factory=Counter)
    task_failures: int = 0
    candidates: int = 0
    lost: int = 0
    changed: int = 0
    parse_errors: int = 0
    integrity: str = ""
    pending: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def write_spec(workdir: Path, per_topic: int = 2) -> Path:
    generate = ", ".join(f"{k}: {v}" for k, v in SPEC_EXTRA_GENERATE.items())
    path = loopback_spec(workdir / "spec.yaml", per_topic=per_topic)
    path.write_text(path.read_text().replace("concurrency: 2}", f"concurrency: 2, {generate}}}"))
    return path


def reference_run(workdir: Path, per_topic: int = 2) -> dict:
    spec = write_spec(workdir, per_topic)
    with serve() as url:
        synthboot.run(spec, workdir / "reference", lm="openai/fake", api_base=url)
    return candidates_by_slot(workdir / "reference")


def run_scenario(scenario: Scenario, workdir: Path, reference: dict, per_topic: int = 2) -> Outcome:
    """Run with the fault, then resume against a healthy server; compare with `reference`."""
    spec = write_spec(workdir, per_topic)
    run_dir = workdir / "run"
    with serve(script=copy.deepcopy(scenario.script)) as url:  # a fresh copy of a stateful script
        base = f"http://127.0.0.1:{free_port()}/v1" if scenario.refused else url
        try:
            result = synthboot.run(spec, run_dir, lm="openai/fake", api_base=base)
            first = "completed" if not result.generate.tasks_failed else "incomplete"
            message = "; ".join(result.generate.errors[:1])
        except SynthbootError as exc:
            first, message = "stopped", str(exc)
        injected = (len(rows(run_dir, "SELECT 1 FROM lm_attempt_failures WHERE error_type = 'LMTransportError'"))
                    if scenario.refused else url.server.count(scenario.fault))
        outcome = Outcome(scenario.name, scenario.expect, injected, first, message)
        outcome.integrity = integrity(run_dir)
        outcome.attempt_failures = Counter(dict(rows(
            run_dir, "SELECT error_type, COUNT(*) FROM lm_attempt_failures GROUP BY error_type")))
        outcome.task_failures = rows(run_dir, "SELECT COUNT(*) FROM lm_failures")[0][0]
        outcome.extra["retried_calls_stored"] = rows(
            run_dir, "SELECT COUNT(DISTINCT f.call_key) FROM lm_attempt_failures f JOIN lm_calls c "
                     "ON c.key = f.call_key WHERE f.retried = 1")[0][0]
        if first != "completed":
            url.server.set_script(None)  # the fault is gone: resume
            synthboot.run(spec, run_dir, lm="openai/fake", api_base=url)
    final = candidates_by_slot(run_dir)
    outcome.candidates = len(final)
    outcome.lost = sum(1 for slot in reference if slot not in final and not _replaced_by_parse_error(slot, final))
    outcome.changed = sum(1 for slot, fields in final.items() if slot in reference and reference[slot] != fields)
    outcome.parse_errors = rows(run_dir, "SELECT COUNT(*) FROM candidates WHERE origin = 'lm' AND fields IS NULL")[0][0]
    from synthboot.status import run_status

    outcome.pending = run_status(run_dir).funnel.pending
    return outcome


def _replaced_by_parse_error(slot: tuple[str, int], final: dict) -> bool:
    """The LM answered this batch with content that did not parse: one parse-error candidate stands for it."""
    return final.get((slot[0], 0)) == "null"
