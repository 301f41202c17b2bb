"""Issue 15: would decoding several sequences at once pay on this CPU? llama.cpp's raw decode rate.

One llama.cpp context (1 thread, unified KV cache) evaluates a 700-token prompt, copies its KV to
15 more sequences, then decodes one token for B sequences per `llama_decode` call (B = 1, 8, 16),
twice in turn. Prints tokens per CPU second and per wall second. No sampling: the model alone.

    python bench/llama_batch_decode.py [smollm2|qwen2.5-coder-1.5b]
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from llama_cpp import llama_cpp as L

from synthboot.lm.local import resolve_model_path

PROMPT, SEQS, STEPS = 700, 16, 12



def decode_items(ctx, batch, items: list[tuple[int, int, int, bool]]) -> None:
    """One llama_decode of (token, position, sequence id, wants logits) rows."""
    batch.n_tokens = len(items)
    for i, (token, pos, seq, logits) in enumerate(items):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
        batch.seq_id[i][0] = seq
    if L.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")

def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(resolve_model_path(name)).encode(), L.llama_model_default_params())
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_seq_max = 16384, 512, SEQS
    params.n_threads = params.n_threads_batch = 1
    params.kv_unified = True  # without it each sequence gets n_ctx / n_seq_max cells, and B=4 gained nothing
    ctx = L.llama_init_from_model(model, params)
    memory = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(512, 0, SEQS)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:
        decode_items(ctx, batch, items)

    prompt = np.random.default_rng(0).integers(100, 20000, PROMPT).tolist()
    cpu = time.process_time()
    for start in range(0, PROMPT, 512):
        chunk = prompt[start:start + 512]
        decode([(token, start + i, 0, i == len(chunk) - 1) for i, token in enumerate(chunk)])
    print(f"prompt: {PROMPT / (time.process_time() - cpu):.1f} tok/s CPU", flush=True)
    for seq in range(1, SEQS):
        L.llama_memory_seq_cp(memory, 0, seq, -1, -1)
    for width in (1, 8, 16, 1, 8, 16):
        for seq in range(SEQS):
            L.llama_memory_seq_rm(memory, seq, PROMPT, -1)
        cpu, wall = time.process_time(), time.perf_counter()
        for step in range(STEPS):
            decode([(1000 + step, PROMPT + step, seq, True) for seq in range(width)])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"B={width}: {STEPS * width / cpu:.1f} tok/s CPU, {STEPS * width / wall:.1f} tok/s wall", flush=True)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
