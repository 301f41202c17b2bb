"""Issue 15: the embedded model's useful tokens/s on the demo spec, today's sampler vs the new one.

Runs the generation stage of `examples/python-qa.yaml` (the demo spec: `conditioned` strategy,
5 examples per call, temperature 0.9, max_tokens 1024) on the embedded model through the same
engine users get (`LlamaCppEngine`, 2 instances x 1 thread, concurrency 2), once per sampler, in
interleaved rounds (A B, B A, ...) so both see the same machine load:

- `today`: llama-cpp-python's own sampler chain (the grammar over the whole vocabulary every step),
  and only the prefix shared with an instance's previous prompt reused: the pipeline before issue 15;
- `shortlist`: the grammar checked on the top candidates (`synthboot.lm.sampling`), same tokens;
- `new`: shortlist + saved prompt states (`synthboot.lm.prefix_states`): the engine's defaults now;
- `lazy`: llama.cpp's sample-then-check rule + saved prompt states;
- `batched`: several calls per llama.cpp decode (`synthboot.lm.batched`): 2 instances x 4
  sequences, 8 calls in flight; `batched8`: 1 instance x 2 threads x 8 sequences.

Useful tokens are completion tokens: what the model wrote (prompt tokens reused from the KV cache or
evaluated again are cost, not output). Each run gets its own store, so no call is a cache hit.
Reports wall and process CPU time (all threads), tokens, candidates, how many prompt tokens each
call shares with the previous one (what llama-cpp-python's own prefix reuse can skip), and whether
every call's output text equals today's (same seed -> same output).

    python bench/embedded_speed.py --limit 40 --rounds 2
    python bench/embedded_speed.py --limit 64 --rounds 1 --configs today,new,batched,batched8
    python bench/embedded_speed.py --model qwen2.5-coder-1.5b --limit 4 --rounds 1 --max-tokens 200
    python bench/embedded_speed.py --limit 20 --rounds 2 --configs today,new --baseline-src /tmp/old/src

`--baseline-src` runs the first config from another checkout's `src` (in a subprocess): the way to
compare against the pipeline as it was when a change is in the prompts, not the engine (then the
outputs differ from the baseline's, and what is checked is that each config's rounds agree).
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
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# config -> (engine settings, calls in flight). `batched`: 2 instances x 4 sequences per llama.cpp
# call; `batched8`: 1 instance with both threads x 8 sequences.
CONFIGS: dict[str, tuple[dict, int]] = {
    "today": ({"sampler": "eager", "prefix_states_mb": 0}, 2),
    "shortlist": ({"sampler": "shortlist", "prefix_states_mb": 0}, 2),
    "new": ({"sampler": "shortlist", "prefix_states_mb": 256}, 2),
    "lazy": ({"sampler": "lazy", "prefix_states_mb": 256}, 2),
    "batched": ({"parallel": 4}, 8),
    "batched8": ({"parallel": 8, "instances": 1, "n_threads": 2}, 8),
}


def generate_run(model: str, config: str, limit: int, max_tokens: int | None) -> dict:
    import dspy

    import synthboot
    from synthboot.lm.batched import BatchDecoder
    from synthboot.lm.calls import store_as_lm_cache
    from synthboot.lm.local import LlamaCppEngine, llama_call
    from synthboot.stages.generate import plan_tasks, run_generate
    from synthboot.store import Store

    outputs: dict[str, str] = {}
    prompts: list[list[int]] = []

    class RecordingEngine(LlamaCppEngine):
        """The embedded engine, keeping each call's output text by its request."""

        def complete(self, request):
            response = super().complete(request)
            messages, kwargs, _ = llama_call(request)
            outputs[json.dumps([messages, kwargs["seed"]], sort_keys=True)] = response.message.text or ""
            return response

    overrides = {"generate.max_tokens": max_tokens} if max_tokens else None
    spec = synthboot.load_spec(REPO / "examples" / "python-qa.yaml", overrides)
    settings, concurrency = CONFIGS[config]
    engine = RecordingEngine(model, **{"instances": 2, **settings})
    lm = dspy.LM(f"local/{model}", engine=engine, temperature=spec.generate.temperature,
                 max_tokens=spec.generate.max_tokens, num_retries=0)
    for _ in range(engine.instances):  # load every instance before the clock starts
        if engine.parallel > 1:
            engine._decoders.append(BatchDecoder(str(engine.path), parallel=engine.parallel, n_ctx=engine.n_ctx,
                                                 n_threads=engine.n_threads))
        else:
            engine._pool.put(engine._load())
            engine._created += 1
    tasks = plan_tasks(spec, limit=limit)
    with tempfile.TemporaryDirectory() as tmp, Store(tmp, create=True) as store, store_as_lm_cache(store):
        cpu, wall = time.process_time(), time.perf_counter()
        gen = run_generate(store, spec, lm, tasks, concurrency=concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        totals = store.call_totals()[0]
    llama = engine._decoders[0].builder if engine.parallel > 1 else engine._pool.get()
    # Tokens each prompt shares with the one before (message texts joined; the chat template adds
    # the same few tokens to every prompt).
    for key in outputs:
        messages = json.loads(key)[0]
        prompts.append(llama.tokenize("".join(m["content"] for m in messages).encode(), special=True))
    if engine.parallel == 1:
        engine._pool.put(llama)
    shared_in_cache = sum(d.tokens_shared for d in engine._decoders)
    rows = sum(d.rows for d in engine._decoders) / max(1, sum(d.steps for d in engine._decoders))
    engine.close()
    shared = [common_prefix(a, b) for a, b in zip(prompts, prompts[1:])]
    restored = (engine.prefix_states.tokens_restored if engine.prefix_states else 0) + shared_in_cache
    return {"config": config, "model": model, "calls": len(outputs), "candidates": gen.candidates,
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "useful_tok_per_wall_s": round(totals.completion_tokens / wall, 2),
            "useful_tok_per_cpu_s": round(totals.completion_tokens / cpu, 2),
            "mean_prompt_tokens_shared_with_previous": round(sum(shared) / max(1, len(shared))),
            "prompt_tokens_restored_from_states": restored, "mean_sequences_per_decode": round(rows, 2),
            "_outputs": outputs}


def baseline_run(args: argparse.Namespace, config: str) -> dict:
    """One run of `config` with the baseline checkout's synthboot (this script, run by that code)."""
    env = {**os.environ, "PYTHONPATH": args.baseline_src}
    command = [sys.executable, __file__, "--single", config, "--model", args.model, "--limit", str(args.limit)]
    if args.max_tokens:
        command += ["--max-tokens", str(args.max_tokens)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "src": args.baseline_src}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--limit", type=int, default=40, help="candidates asked for (as `synthboot run --limit`)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every sampler")
    parser.add_argument("--max-tokens", type=int, default=None, help="override the spec's max_tokens")
    parser.add_argument("--configs", default="today,shortlist,new",
                        help=f"comma-separated, the first is the baseline; of {', '.join(CONFIGS)}")
    parser.add_argument("--baseline-src", default=None,
                        help="run the first config with this `src` on PYTHONPATH (another checkout)")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one run, as JSON (subprocess)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(generate_run(args.model, args.single, args.limit, args.max_tokens)))
        return
    configs = args.configs.split(",")
    print("uptime:", uptime(), flush=True)
    runs: list[dict] = []
    for round_ in range(args.rounds):
        order = configs if round_ % 2 == 0 else configs[::-1]
        for config in order:
            if args.baseline_src and config == configs[0]:
                row = baseline_run(args, config)
            else:
                row = generate_run(args.model, config, args.limit, args.max_tokens)
            runs.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}), "|", uptime(), flush=True)
    baseline = [r for r in runs if r["config"] == configs[0]]
    for config in configs:
        rows = [r for r in runs if r["config"] == config]
        print(json.dumps({"config": config, "same_outputs_every_round": all(
            r["_outputs"] == rows[0]["_outputs"] for r in rows[1:])}), flush=True)
    for config in configs[1:]:
        rows = [r for r in runs if r["config"] == config]
        same = [a["_outputs"] == b["_outputs"] for a, b in zip(baseline, rows)]
        wall = sum(r["completion_tokens"] for r in rows) / sum(r["wall_s"] for r in rows)
        wall0 = sum(r["completion_tokens"] for r in baseline) / sum(r["wall_s"] for r in baseline)
        cpu = sum(r["completion_tokens"] for r in rows) / sum(r["cpu_s"] for r in rows)
        cpu0 = sum(r["completion_tokens"] for r in baseline) / sum(r["cpu_s"] for r in baseline)
        print(json.dumps({"config": config, "useful_tok_s_over_today_wall": round(wall / wall0, 3),
                          "useful_tok_s_over_today_cpu": round(cpu / cpu0, 3),
                          "same_outputs_as_today_per_round": same}), flush=True)
    print("uptime:", uptime())


if __name__ == "__main__":
    main()
