"""Benchmark: generation strategies (generate.strategy) side by side on the same specs.

Each strategy runs the whole pipeline (generate -> validate -> dedup -> judge off -> split) on the
example specs with a small --limit, on the same LM (default: the embedded model), each in a fresh
run directory. Per strategy and spec it reports:

- generated: candidates the LM wrote; parse errors among them;
- seed copies: exact (same input text after lower-casing and dropping punctuation as a seed's) and
  near (word-set Jaccard >= 0.6 with a seed's input text, the MinHash dedup default);
- kept: candidates that passed every filter, and kept / generated;
- distinct: share of parsed candidates not within Jaccard 0.6 of an earlier parsed one, and
  distinct-2 of the parsed input texts;
- calls and wall time.

    python bench/generation_strategies.py --topics 4 --per-call 2 --limit 16 [--strategies conditioned,few_shot] [--lm local]

`--topics N` keeps each spec's first N topics and `--per-call` sets generate.per_call, so a run on
the embedded model fits the time (with --limit 16, 4 topics and 2 per call: 8 calls per spec, two
batches per topic, so the strategies that read earlier waves get a second wave). The `subtopics`
strategy runs with the topics removed: the LM proposes as many (one extra call).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SPECS = {"python-qa": REPO / "examples" / "python-qa.yaml", "support-tickets": REPO / "examples" / "support-tickets.yaml"}
STRATEGIES = ("few_shot", "conditioned", "style_seeds", "subtopics", "mutate")
NEAR = 0.6


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def measure(run_dir: Path, spec) -> dict:
    from synthboot.schema import TaskSchema, all_seeds
    from synthboot.stages.diversity import distinct_n
    from synthboot.status import run_status
    from synthboot.store import Store

    schema = TaskSchema.from_spec(spec)

    def text_of(fields: dict) -> str:
        return " ".join(str(fields.get(n, "")) for n in schema.inputs)

    seeds = [text_of(s) for s in all_seeds(spec)]
    seed_norm, seed_words = {normalise(s) for s in seeds}, [words(s) for s in seeds]
    with Store(run_dir) as store:
        cands = store.candidates(origin="lm")
        totals = store.call_totals()[0]
        calls = (totals.calls, totals.latency_s)
    parsed = [text_of(c.fields) for c in cands if c.fields is not None]
    exact = sum(1 for t in parsed if normalise(t) in seed_norm)
    near = sum(1 for t in parsed if normalise(t) not in seed_norm and any(jaccard(words(t), s) >= NEAR for s in seed_words))
    distinct, seen = 0, []
    for t in parsed:
        w = words(t)
        if not any(jaccard(w, s) >= NEAR for s in seen):
            distinct += 1
        seen.append(w)
    status = run_status(run_dir)
    return {"generated": len(cands), "parse_errors": len(cands) - len(parsed), "seed_exact": exact, "seed_near": near,
            "kept": status.funnel.kept, "distinct": distinct, "distinct2": round(distinct_n(parsed, 2), 3),
            "calls": calls[0], "lm_seconds": round(calls[1], 1),
            "rejected": {stage: dict(c) for stage, c in status.funnel.rejected.items()}}


def run_one(name: str, strategy: str, limit: int, lm: str | None, out: Path, topics: int | None = None,
            per_call: int | None = None) -> dict:
    import synthboot

    spec = synthboot.load_spec(SPECS[name])
    if topics:
        spec = spec.model_copy(update={"topics": spec.topics[:topics]})
    generate = {"strategy": strategy, **({"per_call": per_call} if per_call else {})}
    update: dict = {"generate": spec.generate.model_copy(update=generate)}
    if strategy == "subtopics":
        update["generate"] = update["generate"].model_copy(update={"subtopics": len(spec.topics)})
        update["topics"] = []
    spec = spec.model_copy(update=update)
    run_dir = out / f"{name}-{strategy}"
    started = time.perf_counter()
    synthboot.run(spec, run_dir, limit=limit, lm=lm)
    wall = time.perf_counter() - started
    row = {"spec": name, "strategy": strategy, "limit": limit, "wall_s": round(wall, 1), **measure(run_dir, spec)}
    if strategy == "subtopics":
        from synthboot.status import run_status

        row["subtopics"] = run_status(run_dir).subtopics
    return row


def table(rows: list[dict]) -> str:
    head = ("| spec | strategy | generated | parse errors | seed copies exact / near | kept (share) | distinct | "
            "distinct-2 | calls | wall s |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        share = f"{r['kept'] / r['generated']:.0%}" if r["generated"] else "-"
        lines.append(f"| {r['spec']} | {r['strategy']} | {r['generated']} | {r['parse_errors']} | "
                     f"{r['seed_exact']} / {r['seed_near']} | {r['kept']} ({share}) | {r['distinct']} | "
                     f"{r['distinct2']} | {r['calls']} | {r['wall_s']} |")
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20, help="candidates asked per spec and strategy")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--specs", default=",".join(SPECS))
    parser.add_argument("--topics", type=int, default=None, help="keep each spec's first N topics")
    parser.add_argument("--per-call", type=int, default=None, help="generate.per_call for every run")
    parser.add_argument("--lm", default=None, help="generator LM (default: the spec's, the embedded model)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="synthboot-strategies-"))
    rows = []
    for name in args.specs.split(","):
        for strategy in args.strategies.split(","):
            row = run_one(name, strategy, args.limit, args.lm, out, args.topics, args.per_call)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
