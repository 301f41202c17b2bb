"""The optimize loop end to end, offline: bootstrap a sentiment set, optimize, score on held-out test.

    python bench/optimize_sentiment.py [--out /tmp/synthboot-bench/sentiment] [--limit 160]
        [--optimizer bootstrap] [--set max_bootstrapped_demos=4] [--program "text -> label"]

Everything runs on the embedded SmolLM2-135M (generator and student) through the run store, so a
second invocation re-uses every LM call. Prints a Markdown block (numbers and the command) for
BENCHMARKS.md. The test split is scored only after compiling; intervals are 95% bootstrap.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import synthboot  # noqa: E402
from synthboot.optimize import OptimizeSettings, run_optimize  # noqa: E402
from synthboot.optimize.programs import parse_settings  # noqa: E402
from synthboot.status import run_status  # noqa: E402

HERE = Path(__file__).resolve().parent


def pct(score) -> str:
    return "-" if score is None else f"{score.mean * 100:.1f} [{score.low * 100:.1f}, {score.high * 100:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(HERE.parent / "examples" / "sentiment.yaml"))
    parser.add_argument("--out", default="/tmp/synthboot-bench/sentiment")
    parser.add_argument("--limit", type=int, default=160)
    parser.add_argument("--program", default="text -> label")
    parser.add_argument("--module", default="predict")
    parser.add_argument("--optimizer", default="bootstrap")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    parser.add_argument("--metric", default="exact_match")
    parser.add_argument("--test", default=None, help="JSONL of real labeled examples (hybrid workflow)")
    args = parser.parse_args()

    started = time.perf_counter()
    run = synthboot.run(synthboot.load_spec(args.spec), args.out, limit=args.limit)
    gen_s = time.perf_counter() - started
    status = run_status(args.out)
    settings = OptimizeSettings(program=args.program, module=args.module, optimizer=args.optimizer,
                                optimizer_settings=parse_settings(args.settings), metric=args.metric,
                                test_file=args.test)
    started = time.perf_counter()
    report = run_optimize(args.out, settings, progress=lambda m: print(m, file=sys.stderr))
    opt_s = time.perf_counter() - started

    f = status.funnel
    command = "python bench/optimize_sentiment.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"\n`{command.strip()}`\n")
    print(f"- data: {f.generated} generated, {f.kept} kept; splits train {f.splits.get('train', 0)}, "
          f"dev {f.splits.get('dev', 0)}, test {f.splits.get('test', 0)}; pipeline {gen_s:.0f} s "
          f"({run.lm_calls_made} LM calls made, {run.lm_calls_cached} from the store)")
    print(f"- program `{args.program}` ({args.module}), optimizer {args.optimizer} {args.settings or ''}, "
          f"metric {report.settings['metric']}, student {report.settings['lm']}; optimize {opt_s:.0f} s\n")
    print("| split | n | baseline | optimized | gain [95% CI] |")
    print("|---|---|---|---|---|")
    for split in ("dev", "test", "real_test"):
        base = report.scores.get((split, "baseline"))
        if base is None:
            continue
        gain = report.scores.get((split, "gain"))
        gain_text = "-" if gain is None else f"{gain.mean * 100:+.1f} [{gain.low * 100:.1f}, {gain.high * 100:.1f}]"
        print(f"| {split} | {base.n} | {pct(base)} | {pct(report.scores.get((split, 'optimized')))} | {gain_text} |")
    print("\n| phase | calls | made now | prompt tokens | completion tokens | seconds |")
    print("|---|---|---|---|---|---|")
    for p in report.phases:
        print(f"| {p.phase} | {p.calls} | {p.calls_made} | {p.prompt_tokens} | {p.completion_tokens} | {p.seconds:.1f} |")


if __name__ == "__main__":
    main()
