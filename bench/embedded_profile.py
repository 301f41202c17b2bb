"""Issue 15: where an embedded-model call's CPU goes (llama.cpp decode vs token sampling), per config.

Records the requests of a small generation run of the demo spec (`bench/embedded_speed.py`'s
`generate_run`), then replays them one at a time on a single-instance engine per config under
cProfile, with llama.cpp's own counters for prompt and generation decode time.

    python bench/embedded_profile.py --limit 10 --max-tokens 200 today new
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import embedded_speed  # noqa: E402


def main() -> None:
    from llama_cpp import llama_cpp

    from synthboot.lm import local

    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="+", choices=sorted(embedded_speed.CONFIGS))
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time")
    args = parser.parse_args()
    requests: list = []
    complete = local.LlamaCppEngine.complete

    def recording(self, request):
        requests.append(request)
        return complete(self, request)

    local.LlamaCppEngine.complete = recording  # type: ignore[method-assign]
    embedded_speed.generate_run("smollm2", "today", args.limit, args.max_tokens)
    local.LlamaCppEngine.complete = complete  # type: ignore[method-assign]
    print("uptime:", embedded_speed.uptime(), flush=True)
    for config in args.configs:
        settings, _ = embedded_speed.CONFIGS[config]
        engine = local.LlamaCppEngine("smollm2", **{**settings, "instances": 1})
        engine.complete(requests[0])  # loads the instance; not counted
        llama = engine._pool.get()
        llama_cpp.llama_perf_context_reset(llama._ctx.ctx)
        engine._pool.put(llama)
        profile = cProfile.Profile()
        cpu = time.process_time()
        profile.enable()
        for request in requests[1:]:
            engine.complete(request)
        profile.disable()
        cpu = time.process_time() - cpu
        llama = engine._pool.get()
        perf = llama_cpp.llama_perf_context(llama._ctx.ctx)
        engine._pool.put(llama)
        engine.close()
        stats = pstats.Stats(profile)
        sampling = sum(row[3] for func, row in stats.stats.items()  # type: ignore[attr-defined]
                       if func[2] == "sample" and func[0].endswith(("lm/sampling.py", "llama_cpp/_internals.py")))
        decode = sum(row[2] for func, row in stats.stats.items()  # type: ignore[attr-defined]
                     if func[2] == "decode" and "_internals" in func[0])
        print(f"{config}: {len(requests) - 1} calls, process CPU {cpu:.1f} s; wall in llama.cpp decode {decode:.1f} s, "
              f"in sampling {sampling:.1f} s; prompt decode {perf.n_p_eval} tokens in {perf.t_p_eval_ms / 1000:.1f} s, "
              f"generation decode {perf.n_eval} tokens in {perf.t_eval_ms / 1000:.1f} s", flush=True)
        if args.top:
            stats.sort_stats("tottime").print_stats(args.top)
    print("uptime:", embedded_speed.uptime())


if __name__ == "__main__":
    main()
