"""Benchmark 1: generation at the latency limit against a loopback OpenAI-compatible server.

A real HTTP server (tests/support/openai_server.py, in its own process) answers every request after
a fixed delay with valid examples. N generation calls at concurrency C cannot finish faster than
N * delay / C; we report measured / bound, and the pipeline's own cost per candidate (parse,
validate, store) from the same run with a zero-delay server. A third line is the floor this server
and machine allow: the same requests sent by a client that does no work per call (http.client on
32 threads, one request body captured from the pipeline), so the gap between it and the bound is
the server's and the schedule's (1000 calls are 31.25 rounds of 32), not the pipeline's.

    python bench/latency.py --calls 1000 --concurrency 32 --delay 0.2 --repeat 3
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


def floor_run(calls: int, concurrency: int, delay: float, per_call: int) -> dict:
    """The same number of requests, with one real request body, from a client with no per-call work."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import dspy

    import synthboot
    from synthboot.lm.adapter import JSON_ADAPTER
    from synthboot.schema import TaskSchema
    from synthboot.stages.generate import make_generator
    from tests.support.openai_server import serve

    spec = synthboot.parse_spec(SPEC.format(topics="loops", per_topic=per_call, per_call=per_call))
    with serve() as url:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=url, api_key="x", cache=False, num_retries=0)
        with dspy.context(lm=lm, adapter=JSON_ADAPTER):
            make_generator(TaskSchema.from_spec(spec), spec)(task=spec.task, seed_examples="[]", topic="loops",
                                                             count=per_call)
        body = json.dumps(url.server.requests[-1].body).encode()
    proc, url = start_server(delay)
    host, port = url.split("//")[1].split("/")[0].split(":")
    local = threading.local()

    def one(_: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(host, int(port))
        local.conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        local.conn.getresponse().read()

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(concurrency)))  # open the connections
            started = time.perf_counter()
            list(pool.map(one, range(calls)))
            wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
    bound = calls * delay / concurrency
    return {"floor_client": "http.client, no per-call work", "calls": calls, "concurrency": concurrency,
            "wall_s": round(wall, 3), "bound_s": round(bound, 3), "measured_over_bound": round(wall / bound, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--per-call", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs against the delayed server")
    # A real model name (the server ignores it): DSPy looks its metadata up on every call, and an
    # unknown name is its slow path.
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for _ in range(args.repeat):
        print(json.dumps(one_run(args.calls, args.concurrency, args.delay, args.per_call, args.model)), flush=True)
    # The same calls against a server that answers at once: what the pipeline itself costs.
    free = one_run(args.calls, args.concurrency, 0.0, args.per_call, args.model)
    free["overhead_ms_per_candidate"] = round(1000 * (free["generate_s"] + free["validate_s"]) / free["candidates"], 3)
    print(json.dumps(free), flush=True)
    print(json.dumps(floor_run(args.calls, args.concurrency, args.delay, args.per_call)))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
