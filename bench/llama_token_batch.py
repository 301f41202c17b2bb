"""Issue 15: what k tokens of ONE sequence cost in one llama.cpp decode, against one token.

Speculative decoding (a draft model, or prompt-lookup drafts of JSON keys and repeated phrases)
pays only when checking k drafted tokens in one decode costs much less than k decodes of one
token: true on a GPU or a memory-bound CPU, where a step's cost is reading the weights. This
measures it on the embedded model: a 900-token context (random tokens), then 40 decodes of k
tokens each at the same position (the KV cells past the context are dropped between decodes), 1
thread, process CPU time. No sampling: the model alone.

    python bench/llama_token_batch.py [smollm2|qwen2.5-coder-1.5b] [--context 900] [--reps 40]
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

from synthboot.lm.local import resolve_model_path


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="smollm2")
    parser.add_argument("--context", type=int, default=900)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--sizes", default="1,2,3,4,6,8,12")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    llm = Llama(model_path=str(resolve_model_path(args.model)), n_ctx=4096, n_threads=1, n_threads_batch=1,
                verbose=False)
    rng = np.random.default_rng(0)
    llm.eval([int(t) for t in rng.integers(100, 20000, args.context)])
    context = llm.n_tokens
    one = None
    for k in (int(s) for s in args.sizes.split(",")):
        cpu = time.process_time()
        for _ in range(args.reps):
            llm.n_tokens = context  # eval drops the cells past n_tokens first
            llm.eval([int(t) for t in rng.integers(100, 20000, k)])
        per_decode = (time.process_time() - cpu) / args.reps * 1000
        one = one or per_decode
        print(f"{k:>2} tokens per decode: {per_decode:6.1f} ms CPU per decode, {per_decode / k:5.1f} ms per token, "
              f"{one * k / per_decode:4.2f}x the tokens per CPU second of one at a time", flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
