"""Fault summary: each fault class injected by the loopback server, what the run did, what was lost.

    .venv/bin/python bench/faults.py [--per-topic 8]

For every scenario in tests/support/faults.py: a run against a real OpenAI-compatible server on
127.0.0.1 that injects the fault, then (unless it completed) a resume against the healthy server,
compared candidate by candidate with an uninterrupted reference run. Prints a Markdown table for
BENCHMARKS.md. The goal for the `lost` column is 0 everywhere.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.faults import SCENARIOS, reference_run, run_scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-topic", type=int, default=8, help="candidates per topic (5 topics, 2 per call)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "reference").mkdir()
        reference = reference_run(base / "reference", args.per_topic)
        print(f"reference: {len(reference)} candidates from {len(reference) // 2} generation calls\n")
        print("| fault class | injected | first run | failed attempts in store | finished after resume | lost "
              "| integrity | seconds |")
        print("|---|---:|---|---|---:|---:|---|---:|")
        for i, scenario in enumerate(SCENARIOS):
            work = base / f"s{i}"
            work.mkdir()
            started = time.perf_counter()
            o = run_scenario(scenario, work, reference, args.per_topic)
            attempts = ", ".join(f"{k} {v}" for k, v in sorted(o.attempt_failures.items())) or "-"
            first = o.first_run + (f" ({o.task_failures} final failures)" if o.task_failures else "")
            finished = f"{o.candidates}/{len(reference)}" + (f" ({o.parse_errors} parse-error)" if o.parse_errors else "")
            print(f"| {scenario.name} | {o.injected} | {first} | {attempts} | {finished} | {o.lost} | {o.integrity} "
                  f"| {time.perf_counter() - started:.1f} |", flush=True)


if __name__ == "__main__":
    main()
