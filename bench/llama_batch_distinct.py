"""Issue 15: llama.cpp's decode rate with several sequences per call when each has its own prompt.

`bench/llama_batch_decode.py` copies one prompt to every sequence, so all rows attend to the same
cells. Generation prompts differ per call (they share the instructions, then differ), so here each
sequence gets its own random prompt (optionally after a shared prefix copied with
`llama_memory_seq_cp`), then B sequences decode one token each per `llama_decode` call. 1 thread.
Prints prompt and generation tokens per CPU second for each configuration.

    python bench/llama_batch_distinct.py                                   # SmolLM2, 750-token prompts
    python bench/llama_batch_distinct.py qwen2.5-coder-1.5b --prompt 200 --steps 12 --shared 100
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
from llama_cpp import llama_cpp as L

from synthboot.lm.local import resolve_model_path

from llama_batch_decode import decode_items  # bench/ is on the path when run as a script


QUIET = L.llama_log_callback(lambda level, text, data: None)  # kept alive: llama.cpp calls it later


def run(model, *, seqs: int, flash: bool, unified: bool, prompt_len: int, steps: int, shared: int) -> str:
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 2048 * seqs, 512, 512, seqs
    params.n_threads = params.n_threads_batch = 1
    params.kv_unified = unified
    params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, params)
    batch = L.llama_batch_init(512, 0, 1)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:
        decode_items(ctx, batch, items)

    rng = np.random.default_rng(0)
    head = rng.integers(100, 20000, shared).tolist()
    cpu0 = time.process_time()
    evaluated = 0
    for seq in range(seqs):
        prompt = head + rng.integers(100, 20000, prompt_len - shared).tolist()
        first = 0
        if shared and seq > 0:
            L.llama_memory_seq_cp(L.llama_get_memory(ctx), 0, seq, 0, shared)
            first = shared
        for start in range(first, prompt_len, 512):
            chunk = prompt[start:min(start + 512, prompt_len)]
            decode([(token, start + i, seq, i == len(chunk) - 1) for i, token in enumerate(chunk)])
            evaluated += len(chunk)
    cpu1 = time.process_time()
    for step in range(steps):
        decode([(1000 + step, prompt_len + step, seq, True) for seq in range(seqs)])
    cpu2 = time.process_time()
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    return (f"sequences={seqs} unified={unified} flash_attn={flash} shared_prefix={shared}: "
            f"prompt {evaluated / (cpu1 - cpu0):.0f} tok/s CPU, generation {seqs * steps / (cpu2 - cpu1):.1f} tok/s CPU")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="smollm2")
    parser.add_argument("--prompt", type=int, default=750)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--shared", type=int, default=345, help="prefix the 8-sequence unified runs share")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    L.llama_backend_init()
    L.llama_log_set(QUIET, None)
    model = L.llama_model_load_from_file(str(resolve_model_path(args.model)).encode(), L.llama_model_default_params())
    configs = [(1, False, True, 0), (4, False, True, 0), (8, False, True, args.shared), (8, True, True, args.shared),
               (4, False, False, 0), (8, False, False, 0), (1, False, True, 0)]
    for seqs, flash, unified, shared in configs:
        print(run(model, seqs=seqs, flash=flash, unified=unified, prompt_len=args.prompt, steps=args.steps,
                  shared=shared), flush=True)
    L.llama_model_free(model)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
