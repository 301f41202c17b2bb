"""Benchmark 2: the embedded model's tokens/s through the pipeline vs raw llama-cpp-python.

The pipeline's generation stage runs N calls on the embedded model (DSPy formatting, the call,
parsing, the store). The exact requests its engine received are then replayed with raw
llama-cpp-python (same messages, grammar, seed, sampling) in several layouts:

- raw 2x1: two `Llama` instances with one thread each, two at a time (the pipeline's layout);
- raw 1x2: one instance with two threads, one call at a time;
- raw 2x1 no prefix reuse: as 2x1 but each instance forgets its previous prompt first, so the
  shared prefix (instructions + seed examples) is evaluated again every call.

llama-cpp-python reuses the longest common token prefix with the instance's previous prompt on its
own; the last layout measures what that prompt caching of the shared seed prefix is worth.

Since issue 15 the pipeline's engine samples with the grammar checked on a shortlist and restores
saved prompt states (same output tokens as the raw replay, which uses plain `Llama`);
`bench/embedded_speed.py` compares the engine before and after side by side.

    python bench/embedded.py --calls 8
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SPEC = """
name: embedded-bench
task: Question-answer pairs for a Python programming quiz. Answers are concise and factual.
fields:
  question: {type: str, description: "A clear, specific question", input: true, max_length: 200}
  answer: {type: str, description: "A concise, factual answer", max_length: 300}
  difficulty: {type: enum, values: [easy, medium, hard], description: "easy, medium, or hard"}
seeds:
  - {question: "What is the difference between a list and a tuple in Python?", answer: "Lists are mutable while tuples are immutable.", difficulty: easy}
  - {question: "What is a decorator in Python?", answer: "A function that takes a function and returns an extended one.", difficulty: medium}
  - {question: "How does garbage collection work in Python?", answer: "Reference counting plus a cyclic collector for reference cycles.", difficulty: hard}
topics: [file-io, concurrency, testing, data-structures]
generate: {per_topic: PER_TOPIC, per_call: 2, max_tokens: 300}
"""


def llama_args(request) -> tuple[list[dict], dict, dict | None]:
    """What LlamaCppEngine sends llama.cpp for a DSPy request: messages, sampling, JSON schema."""
    from synthboot.lm.local import llama_call

    return llama_call(request)


def pipeline_run(calls: int) -> tuple[dict, list]:
    import dspy

    import synthboot
    from synthboot.lm.calls import store_as_lm_cache
    from synthboot.lm.local import LlamaCppEngine
    from synthboot.stages.generate import plan_tasks, run_generate
    from synthboot.store import Store

    recorded: list = []

    class RecordingEngine(LlamaCppEngine):
        """The embedded engine, keeping each request it is asked to answer (for the raw replay)."""

        def complete(self, request):
            recorded.append(request)
            return super().complete(request)

    spec = synthboot.parse_spec(SPEC.replace("PER_TOPIC", str(calls // 4 * 2)))
    engine = RecordingEngine(instances=2)
    lm = dspy.LM("local/smollm2", engine=engine, temperature=0.9, max_tokens=300, num_retries=0)
    for _ in range(2):  # load both instances before the clock starts, as raw does
        engine._pool.put(engine._load())
        engine._created += 1
    with tempfile.TemporaryDirectory() as tmp, Store(tmp, create=True) as store, store_as_lm_cache(store):
        started = time.perf_counter()
        gen = run_generate(store, spec, lm, plan_tasks(spec), concurrency=2)
        wall = time.perf_counter() - started
        totals = store.call_totals()[0]
        prompt, completion = totals.prompt_tokens, totals.completion_tokens
    engine.close()
    return {"layout": "pipeline 2x1", "calls": len(recorded), "candidates": gen.candidates, "wall_s": round(wall, 2),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "completion_tok_s": round(completion / wall, 1)}, recorded


def raw_run(requests: list, instances: int, threads: int, reuse_prefix: bool) -> dict:
    from llama_cpp import Llama, LlamaGrammar

    from synthboot.lm.local import grammar_text, resolve_model_path

    path = str(resolve_model_path("smollm2"))
    pool: queue.LifoQueue = queue.LifoQueue()
    for _ in range(instances):
        pool.put(Llama(model_path=path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False))
    usage = {"prompt": 0, "completion": 0}
    lock = threading.Lock()

    def one(request) -> None:
        messages, kwargs, schema = llama_args(request)
        grammar = LlamaGrammar.from_string(grammar_text(json.dumps(schema)), verbose=False) if schema else None
        llama = pool.get()
        try:
            if not reuse_prefix:
                llama.reset()  # forget the previous prompt: the whole prompt is evaluated again
            out = llama.create_chat_completion(messages=messages, grammar=grammar, **kwargs)
        finally:
            pool.put(llama)
        with lock:
            usage["prompt"] += out["usage"]["prompt_tokens"]
            usage["completion"] += out["usage"]["completion_tokens"]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=instances) as workers:
        list(workers.map(one, requests))
    wall = time.perf_counter() - started
    while not pool.empty():
        pool.get().close()
    layout = f"raw {instances}x{threads}" + ("" if reuse_prefix else " no prefix reuse")
    return {"layout": layout, "calls": len(requests), "wall_s": round(wall, 2), "prompt_tokens": usage["prompt"],
            "completion_tokens": usage["completion"], "completion_tok_s": round(usage["completion"] / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=8, help="generation calls (a multiple of 4)")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    piped, requests = pipeline_run(args.calls)
    print(json.dumps(piped), flush=True)
    rows = [raw_run(requests, 2, 1, True), raw_run(requests, 1, 2, True), raw_run(requests, 2, 1, False)]
    for row in rows:
        print(json.dumps(row), flush=True)
    same = rows[0]
    print(json.dumps({"pipeline_over_raw_2x1": round(piped["completion_tok_s"] / same["completion_tok_s"], 3),
                      "same_completion_tokens": piped["completion_tokens"] == same["completion_tokens"]}))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
