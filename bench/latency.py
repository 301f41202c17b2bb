"""Benchmark 1: generation at the latency limit against a loopback OpenAI-compatible server.

A real HTTP server (tests/support/openai_server.py, in its own process) answers every request after
a fixed delay with valid examples. N generation calls at concurrency C cannot finish faster than
N * delay / C; we report measured / bound, and the pipeline's own cost per candidate (parse,
validate, store) from the same run with a zero-delay server.

    python bench/latency.py --calls 1000 --concurrency 32 --delay 0.2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SPEC = """
name: latency-bench
task: Question-answer pairs for a Python programming quiz.
fields:
  question: {{type: str, description: "A clear question", input: true, max_length: 300}}
  answer: {{type: str, description: "A concise answer", max_length: 300}}
  difficulty: {{type: enum, values: [easy, medium, hard]}}
seeds:
  - {{question: "What is a decorator in Python?", answer: "A function that wraps another function.", difficulty: medium}}
topics: [{topics}]
generate: {{per_topic: {per_topic}, per_call: {per_call}, max_tokens: 400}}
dedup: {{exact: {{enabled: false}}, word_overlap: {{enabled: false}}}}
"""


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--delay", str(delay)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def one_run(calls: int, concurrency: int, delay: float, per_call: int, args_model: str) -> dict:
    import synthboot
    from synthboot.lm import make_lm
    from synthboot.lm.calls import store_as_lm_cache
    from synthboot.lm.limits import limits_of
    from synthboot.stages.generate import plan_tasks, run_generate
    from synthboot.stages.validate import run_validate
    from synthboot.store import Store

    topics = [f"topic-{i}" for i in range(10)]
    spec = synthboot.parse_spec(SPEC.format(topics=", ".join(topics), per_topic=calls // 10 * per_call,
                                            per_call=per_call))
    proc, url = start_server(delay)
    try:
        with tempfile.TemporaryDirectory() as tmp, Store(tmp, create=True) as store, store_as_lm_cache(store):
            lm = make_lm(args_model, api_base=url, temperature=0.9, max_tokens=400,
                         limits=limits_of(spec.generate))
            lm("warm up the connection pool")
            tasks = plan_tasks(spec)
            started = time.perf_counter()
            cpu0 = time.process_time()
            gen = run_generate(store, spec, lm, tasks, concurrency=concurrency)
            gen_s = time.perf_counter() - started
            gen_cpu = time.process_time() - cpu0
            started = time.perf_counter()
            val = run_validate(store, spec)
            val_s = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
    bound = len(tasks) * delay / concurrency
    return {"calls": len(tasks), "concurrency": concurrency, "delay_s": delay, "candidates": gen.candidates,
            "failed": gen.tasks_failed, "generate_s": round(gen_s, 3), "bound_s": round(bound, 3),
            "measured_over_bound": round(gen_s / bound, 3) if bound else None,
            "generate_cpu_s": round(gen_cpu, 3), "validate_s": round(val_s, 3), "kept": val.kept}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--per-call", type=int, default=1)
    # A real model name (the server ignores it): DSPy looks its metadata up on every call, and an
    # unknown name is its slow path.
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    limited = one_run(args.calls, args.concurrency, args.delay, args.per_call, args.model)
    print(json.dumps(limited))
    # The same calls against a server that answers at once: what the pipeline itself costs.
    free = one_run(args.calls, args.concurrency, 0.0, args.per_call, args.model)
    free["overhead_ms_per_candidate"] = round(1000 * (free["generate_s"] + free["validate_s"]) / free["candidates"], 3)
    print(json.dumps(free))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
