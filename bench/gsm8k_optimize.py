"""GSM8K: does the optimize loop score higher on REAL problems with synthboot's kept synthetic train?

    SYNTHBOOT_BENCH_DATA=../shared/bench python bench/gsm8k_optimize.py --source RUN [--work DIR]
        [--student local/qwen2.5-coder-1.5b] [--real 20] [--sample-seed 0] [--module cot] [--demos 2]

RUN is a finished math run (question -> answer: int), e.g. the one `bench/gsm8k_verify.py --lm
local/qwen2.5-coder-1.5b --skip-optimize` makes (seeds + synthetic problems the verify stage kept).
It is copied (the original is never modified), then `synthboot.optimize` (DSPy BootstrapFewShot,
`--demos` bootstrapped + labelled demos, exact integer match) runs with `--student` on two arms,
both scored on the same `--real` GSM8K test problems (a fixed random sample, `--sample-seed`, of
those within the spec's 400-character question bound):
- synthetic: train/dev/test as the run split them (seeds + kept synthetic problems);
- seeds only: a copy where review rejects every kept synthetic problem (bench/gsm8k_verify.py).
Each arm's zero-shot program (baseline) is the same program on the same real problems: the seeds-only
copy is taken after the synthetic arm, so it inherits the stored calls and its baseline costs nothing.
Every call goes through the copy's store, so a re-run with the same options makes no new calls.
Prints a Markdown table and writes WORK/gsm8k_optimize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from gsm8k_verify import gsm8k_rows, seeds_only_copy  # noqa: E402  (bench/ is on the path when run as a script)

QUESTION_MAX = 400  # the math spec's bound on `question`: longer real rows would not fit its schema


def real_sample(n: int, seed: int) -> list[dict]:
    rows = [r for r in gsm8k_rows("gsm8k_test.jsonl") if len(r["question"]) <= QUESTION_MAX]
    return random.Random(seed).sample(rows, n)


def arm(run_dir: Path, test_file: Path, student: str, module: str, demos: int) -> dict:
    """One optimize run on `run_dir`; its scores, split sizes, demos and calls."""
    from synthboot.optimize import OptimizeSettings, run_optimize
    from synthboot.optimize.programs import parse_settings

    settings = OptimizeSettings(program="question -> answer", module=module, optimizer="bootstrap",
                                optimizer_settings=parse_settings([f"max_bootstrapped_demos={demos}",
                                                                   f"max_labeled_demos={demos}"]),
                                metric="exact_match", lm=student, test_file=str(test_file))
    started = time.perf_counter()
    report = run_optimize(run_dir, settings, progress=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}",
                                                                        file=sys.stderr, flush=True))
    out: dict = {"run_id": report.run_id, "seconds": round(time.perf_counter() - started, 1),
                 **{f"n_{name}": len(ids) for name, ids in report.settings["data"].items()},
                 "phases": {p.phase: {"calls": p.calls, "made": p.calls_made, "seconds": p.seconds}
                            for p in report.phases},
                 "demos": program_demos(run_dir / report.program_path) if report.program_path else []}
    for (split, program), s in report.scores.items():
        out[f"{split}:{program}"] = {"n": s.n, "mean": s.mean, "low": s.low, "high": s.high}
    return out


def real_scores(run_dir: Path, run_id: int | None) -> dict[str, dict[int, float]]:
    """Per real test problem (candidate id), the zero-shot and optimized scores of one optimize run."""
    from synthboot.store import Store

    with Store(run_dir) as store:
        if run_id is None:  # a result written before run ids were recorded: the latest finished run
            run_id = store.optimize_runs()[-1].id
        rows = store.optimize_predictions(run_id, "real_test")
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        out.setdefault(r.program, {})[r.candidate_id] = r.score or 0.0
    return out


def compare(work: Path, result: dict) -> dict:
    """Optimized with seeds + synthetic vs with seeds only on the same real problems: a paired difference.

    The seeds-only store is a copy of the synthetic one, so a real problem has the same id in both.
    """
    from synthboot.optimize.metrics import bootstrap_ci

    syn = real_scores(work / "synthetic", result["synthetic"].get("run_id"))["optimized"]
    seeds = real_scores(work / "synthetic-seeds-only", result["seeds_only"].get("run_id"))["optimized"]
    ids = sorted(syn.keys() & seeds.keys())
    diffs = [syn[i] - seeds[i] for i in ids]
    mean, low, high = bootstrap_ci(diffs)
    return {"n": len(ids), "both_right": sum(1 for i in ids if syn[i] and seeds[i]),
            "only_synthetic": sum(1 for i in ids if syn[i] and not seeds[i]),
            "only_seeds": sum(1 for i in ids if seeds[i] and not syn[i]),
            "difference": {"mean": mean, "low": low, "high": high}}


def program_demos(path: Path) -> list[dict]:
    """The demos the optimizer put in the saved program: question, answer, and whether it carries reasoning."""
    saved = json.loads(path.read_text())
    demos = []
    for predictor in saved.values():
        if isinstance(predictor, dict):
            for d in predictor.get("demos", []):
                demos.append({"question": str(d.get("question", ""))[:90], "answer": d.get("answer"),
                              "bootstrapped": "reasoning" in d})
    return demos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a finished math run (copied, never modified)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/synthboot-bench/gsm8k-optimize"))
    parser.add_argument("--student", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--real", type=int, default=20, help="real GSM8K test problems (same for both arms)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--module", default="cot", choices=["cot", "predict"])
    parser.add_argument("--demos", type=int, default=2, help="max bootstrapped and max labelled demos")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of WORK's finished result again (no LM), with the paired comparison")
    args = parser.parse_args()
    if args.report_only:
        result = json.loads((args.work / "gsm8k_optimize.json").read_text())
        result["paired"] = compare(args.work, result)
        (args.work / "gsm8k_optimize.json").write_text(json.dumps(result, indent=2))
        print(markdown(result, result.get("command", "")))
        return
    if args.source is None or not (args.source / "synthboot.db").exists():
        parser.error(f"--source {args.source} is not a run directory (no synthboot.db)")

    load_before, started = os.getloadavg(), time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    run_dir = args.work / "synthetic"
    if not run_dir.exists():
        shutil.copytree(args.source, run_dir, ignore=shutil.ignore_patterns("run.lock", "programs"))
    test_file = args.work / "real-test.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in real_sample(args.real, args.sample_seed)))

    result = {"source": str(args.source), "student": args.student, "module": args.module, "demos": args.demos,
              "real": args.real, "sample_seed": args.sample_seed}
    result["synthetic"] = arm(run_dir, test_file, args.student, args.module, args.demos)
    result["seeds_only"] = arm(seeds_only_copy(run_dir), test_file, args.student, args.module, args.demos)
    result["paired"] = compare(args.work, result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["command"] = ("python bench/gsm8k_optimize.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    (args.work / "gsm8k_optimize.json").write_text(json.dumps(result, indent=2))
    print(markdown(result, result["command"]))


def markdown(r: dict, command: str) -> str:
    def score(entry: dict | None) -> str:
        if not entry:
            return "n/a"
        return f"{round(entry['mean'] * entry['n'])}/{entry['n']} ({entry['mean']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}])"

    lines = [(f"`{command}` " if command else "") + f"({r['when']}; load average before/after {r['load'][0]} / {r['load'][1]}; "
             f"{r['seconds'] / 60:.1f} min)", "",
             f"| arm (student {r['student']}, {r['module']}, BootstrapFewShot {r['demos']}+{r['demos']}) "
             "| train | dev | demos (bootstrapped) | real test: zero-shot | real test: optimized | calls made |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, key in (("seeds + synthetic", "synthetic"), ("seeds only", "seeds_only")):
        a = r[key]
        made = sum(p["made"] for p in a["phases"].values())
        lines.append(f"| {name} | {a['n_train']} | {a['n_dev']} | {len(a['demos'])} "
                     f"({sum(d['bootstrapped'] for d in a['demos'])}) | {score(a.get('real_test:baseline'))} | "
                     f"{score(a.get('real_test:optimized'))} | {made} |")
    p = r.get("paired")
    if p:
        d = p["difference"]
        lines += ["", f"Paired on the same {p['n']} real problems (optimized, seeds + synthetic minus seeds only): "
                  f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]; right in both {p['both_right']}, only with "
                  f"synthetic train {p['only_synthetic']}, only with seeds {p['only_seeds']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
