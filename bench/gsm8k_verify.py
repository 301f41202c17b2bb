"""GSM8K: are synthboot's math problems right, and do they help the optimize loop on real problems?

    python bench/gsm8k_verify.py [--run /tmp/synthboot-bench/gsm8k] [--limit 24] [--verify 16]
        [--real-test 10] [--lm GENERATOR] [--verifier-lm local] [--verifier-module cot|pot]
        [--verify-module pot|predict|cot] [--skip-generate] [--skip-optimize]

A small math spec (question -> integer answer) seeded with six real GSM8K train problems.
The script runs synthboot on it (resumable; the spec's verify stage uses `--verify-module`, default
pot, on the generator's LM), writes every candidate the verify stage decided with its verdict and
the verifier's program to RUN/gsm8k_items.json (for a hand check), then:
1. verifier check: a DSPy ChainOfThought `question -> answer: int` on `--verifier-lm` answers
   up to `--verify` kept problems; a kept problem is confirmed when its answer equals the stored
   one. The same verifier answers `--real-test` real GSM8K test problems, so the confirmation
   rate can be read against how often it is right on real ones. Also counted without an LM:
   kept questions with fewer than two numbers in them (not a word problem), and kept answers
   that appear verbatim among the question's numbers (a leak or a trivial problem);
2. optimize (DSPy BootstrapFewShot via `synthboot.optimize`, student = the embedded model): on
   the run as generated (seeds + kept synthetic in train) and on a copy where every synthetic
   example is rejected by review (seeds only), both scored on the same real test problems.
Every LM call goes through the run store, so a re-run re-uses them. Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import yaml  # noqa: E402

DATA = Path(os.environ.get("SYNTHBOOT_BENCH_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "bench"))
GSM8K = DATA / "gsm8k"
TOPICS = ["shopping and money", "time, speed and distance", "sharing and fractions", "ages, counting and groups"]
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def gsm8k_rows(name: str) -> list[dict]:
    """question + integer answer (the number after '####')."""
    rows = []
    for line in (GSM8K / name).read_text().splitlines():
        row = json.loads(line)
        final = row["answer"].split("####")[-1].strip().replace(",", "")
        if re.fullmatch(r"-?\d+", final):
            rows.append({"question": row["question"], "answer": int(final)})
    return rows


def write_spec(path: Path, seeds: list[dict], verify_module: str = "pot") -> Path:
    spec = {
        "name": "gsm8k-mini",
        "task": "Grade-school math word problems that take two to four steps of arithmetic, each with its final "
                "answer as a whole number.",
        "fields": {
            "question": {"type": "str", "description": "The word problem, with every number it needs",
                         "input": True, "min_length": 20, "max_length": 400},
            "answer": {"type": "int", "description": "The final answer: one whole number"},
        },
        "seeds": seeds,
        "topics": TOPICS,
        "generate": {"per_topic": 20, "per_call": 3, "max_tokens": 600, "concurrency": 2},
        "dedup": {"fields": ["question"]},
        "verify": {"module": verify_module},
        "split": {"train": 0.6, "dev": 0.2, "test": 0.2, "seed": 42, "include_seeds": True},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def verify(run_dir: Path, problems: list[dict], lm_name: str, module: str = "cot") -> list[int | float | None]:
    """The verifier's answer to each problem (None when it gave none), through the run's store cache.

    `cot`: a ChainOfThought `question -> answer: int`; `pot`: the verify stage's program of thought
    (the LM writes arithmetic, synthboot.arithmetic computes it).
    """
    import dspy

    from synthboot.lm import make_lm
    from synthboot.lm.adapter import JSON_ADAPTER
    from synthboot.lm.calls import call_scope, store_as_lm_cache
    from synthboot.stages.verify_pot import ProgramOfThought
    from synthboot.store import Store
    from synthboot.task import Task

    solver = dspy.ChainOfThought("question -> answer: int")
    answers: list[int | float | None] = []
    with Store(run_dir, lock=True) as store, store_as_lm_cache(store), call_scope("bench-verify"):
        spec = store.spec()
        pot = ProgramOfThought(spec, Task.of(spec).schema, ["answer"]) if module == "pot" else None
        lm = make_lm(lm_name, temperature=0.0, max_tokens=400)
        with dspy.context(lm=lm, adapter=JSON_ADAPTER):
            for p in problems:
                try:
                    if pot is not None:
                        answers.append(pot.compute({"question": p["question"]}, {"temperature": 0.0})["answer"].value)
                    else:
                        answers.append(int(solver(question=p["question"]).answer))
                except Exception as exc:  # noqa: BLE001 - an unparsable answer is "not confirmed"
                    print(f"verifier gave no answer: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
                    answers.append(None)
    return answers


def verdicts(run_dir: Path) -> list[dict]:
    """Every candidate the verify stage decided: its fields, verdict, and the verifier's value and program."""
    from synthboot.store import Store

    with Store(run_dir) as store:
        by_id = {c.id: c for c in store.candidates(origin="lm")}
        out = []
        for cid, d in sorted(store.decisions("verify").items()):
            found = ((d.details or {}).get("lm") or {}).get("fields", {}).get("answer", {})
            out.append({"id": cid, **(by_id[cid].fields or {}), "kept": d.kept, "reason": d.reason,
                        "predicted": found.get("predicted"), "programs": found.get("programs")})
    return out


def structure(kept: list[dict]) -> dict:
    few_numbers = sum(1 for k in kept if len(NUMBER.findall(k["question"])) < 2)
    leaked = sum(1 for k in kept if str(k["answer"]) in {n.replace(",", "") for n in NUMBER.findall(k["question"])})
    return {"fewer_than_two_numbers": few_numbers, "answer_in_question": leaked}


def optimize(run_dir: Path, test_file: Path) -> dict:
    from synthboot.optimize import OptimizeSettings, run_optimize
    from synthboot.optimize.programs import parse_settings

    settings = OptimizeSettings(program="question -> answer", module="cot", optimizer="bootstrap",
                                optimizer_settings=parse_settings(["max_bootstrapped_demos=2",
                                                                   "max_labeled_demos=2"]),
                                metric="exact_match", test_file=str(test_file))
    report = run_optimize(run_dir, settings, progress=lambda m: print(m, file=sys.stderr))
    out = {"train": len(report.settings["data"]["train"]), "dev": len(report.settings["data"]["dev"])}
    for (split, program), s in report.scores.items():
        out[f"{split}:{program}"] = {"n": s.n, "mean": s.mean, "low": s.low, "high": s.high}
    return out


def seeds_only_copy(run_dir: Path) -> Path:
    """A copy of the run in which every kept synthetic example is rejected by review: seeds only."""
    from synthboot.reviews import add_review, refresh_splits
    from synthboot.status import kept_candidates
    from synthboot.store import Store

    target = run_dir.parent / f"{run_dir.name}-seeds-only"
    if not target.exists():
        shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("run.lock", "programs"))
        with Store(target, lock=True) as store:
            for c in kept_candidates(store):
                add_review(store, c.id, "reject", reviewer="bench", note="seeds-only baseline", refresh=False)
            refresh_splits(store)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("/tmp/synthboot-bench/gsm8k"))
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--lm", default=None, help="generator LM (default: the embedded model)")
    parser.add_argument("--verify", type=int, default=16, help="kept problems the verifier answers")
    parser.add_argument("--real-test", type=int, default=10, help="real GSM8K test problems (verifier, optimize)")
    parser.add_argument("--verifier-lm", default="local")
    parser.add_argument("--verifier-module", default="cot", choices=["cot", "pot"],
                        help="the bench's own verifier (cot: independent of the verify stage's pot)")
    parser.add_argument("--verify-module", default="pot", choices=["predict", "cot", "pot"],
                        help="the spec's verify.module (the verify stage inside the run)")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--skip-optimize", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    run_dir = args.run.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    train = gsm8k_rows("gsm8k_train.jsonl")
    seeds = sorted(train[:200], key=lambda r: len(r["question"]))[:6]  # short real problems: a small prompt
    # The spec bounds questions at 400 characters; real rows beyond it would not fit its schema.
    real_test = [r for r in gsm8k_rows("gsm8k_test.jsonl") if len(r["question"]) <= 400][:args.real_test]
    test_file = run_dir.parent / f"{run_dir.name}-real-test.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in real_test))
    gen_s = None
    if not args.skip_generate:
        import synthboot

        spec_path = write_spec(run_dir.parent / f"{run_dir.name}.yaml", seeds, args.verify_module)
        started = time.perf_counter()
        synthboot.run(synthboot.load_spec(spec_path), run_dir, lm=args.lm, limit=args.limit)
        gen_s = time.perf_counter() - started

    from synthboot.status import kept_candidates, run_status
    from synthboot.store import Store

    with Store(run_dir) as store:
        kept = [c.fields for c in kept_candidates(store) if c.fields]
    funnel = run_status(run_dir).funnel
    started = time.perf_counter()
    checked = kept[:args.verify]
    synthetic_answers = verify(run_dir, checked, args.verifier_lm, args.verifier_module)
    real_answers = verify(run_dir, real_test, args.verifier_lm, args.verifier_module)
    items = verdicts(run_dir)
    (run_dir / "gsm8k_items.json").write_text(json.dumps(items, indent=1, default=str))  # for a hand check
    verify_s = time.perf_counter() - started
    result = {
        "generated": funnel.generated, "kept": len(kept),
        "rejected": {stage: dict(c) for stage, c in funnel.rejected.items()},
        "verified": len(checked),
        "confirmed": sum(1 for k, a in zip(checked, synthetic_answers) if a == k["answer"]),
        "real_checked": len(real_test),
        "real_confirmed": sum(1 for r, a in zip(real_test, real_answers) if a == r["answer"]),
        "verifier_lm": args.verifier_lm, "verifier_module": args.verifier_module, "verify_s": verify_s,
        "verify_stage": {"decided": len(items), "kept": sum(1 for i in items if i["kept"])}, "generation_s": gen_s,
        "structure": structure(kept), "kept_examples": kept[:8],
    }
    if not args.skip_optimize:
        started = time.perf_counter()
        result["optimize_synthetic"] = optimize(run_dir, test_file)
        result["optimize_seeds_only"] = optimize(seeds_only_copy(run_dir), test_file)
        result["optimize_s"] = time.perf_counter() - started
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (run_dir / "gsm8k_verify.json").write_text(json.dumps(result, indent=2))
    command = ("python bench/gsm8k_verify.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    print(markdown(result, command, (load_before, os.getloadavg()[0])))


def markdown(r: dict, command: str, load: tuple) -> str:
    def score(entry: dict | None) -> str:
        if not entry:
            return "n/a"
        return f"{entry['mean']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}] (n={entry['n']})"

    lines = [f"`{command}` ({r['when']}; load average before/after {load[0]:.2f} / {load[1]:.2f}"
             + (f"; generation {r['generation_s'] / 60:.1f} min" if r["generation_s"] else "")
             + f"; verifier {r['verify_s'] / 60:.1f} min)", "",
             f"Generated {r['generated']}, kept {r['kept']} (the verify stage kept {r['verify_stage']['kept']} of "
             f"{r['verify_stage']['decided']} it decided). Verifier ({r['verifier_lm']}, "
             + ("ChainOfThought `question -> answer: int`" if r["verifier_module"] == "cot" else "program of thought")
             + f") confirmed {r['confirmed']} of {r['verified']} kept problems; on real GSM8K "
             f"test problems it gives the right answer to {r['real_confirmed']} of {r['real_checked']}. Without an LM: "
             f"{r['structure']['fewer_than_two_numbers']} kept questions hold fewer than two numbers, "
             f"{r['structure']['answer_in_question']} kept answers appear among the question's numbers."]
    if "optimize_synthetic" in r:
        syn, seeds = r["optimize_synthetic"], r["optimize_seeds_only"]
        lines += ["", "| optimize (BootstrapFewShot, student embedded) | train | real test: baseline | real test: optimized |",
                  "|---|---|---|---|",
                  f"| seeds + synthetic | {syn['train']} | {score(syn.get('real_test:baseline'))} | "
                  f"{score(syn.get('real_test:optimized'))} |",
                  f"| seeds only | {seeds['train']} | {score(seeds.get('real_test:baseline'))} | "
                  f"{score(seeds.get('real_test:optimized'))} |"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
