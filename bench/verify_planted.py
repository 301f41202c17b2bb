"""Verify on a planted set: does it reject wrong examples and keep right ones?

Two parts, both through the real verify stage (synthboot.stages.verify) on a fresh run store:

- `vote` (offline, no LM): CLINC150 real test utterances of 20 intents (in confusable pairs), once
  with their true labels (should be kept) and once with planted wrong labels (should be
  rejected): a random other intent of the 20, and the confusable neighbour of the pair. The
  trusted rows the k-NN vote uses are real training utterances: 2 per intent (the seeds a user
  would write), 5 or 10 per intent (seeds plus imported human rows), by `--method` classifier or neighbours.
- `lm` (the verifier on an LM, default the embedded SmolLM2-135M): GSM8K real test problems with
  their true integer answers (kept?) and with planted wrong ones (rejected?): the answer shifted,
  or another problem's answer; and CLINC150 utterances with their true and a swapped intent. The
  true and the wrong version of an item share the verifier's one (stored) call.

    python bench/verify_planted.py vote [--per-intent 2 5 10] [--method classifier neighbours] [--label-texts on off] [--seed 0]
    python bench/verify_planted.py lm --gsm8k 12 --clinc 8          # ~10 s per call on 2 cores
    python bench/verify_planted.py lm --lm local/PATH.gguf --module cot --max-tokens 400 --gsm8k 8 --clinc 0
    python bench/verify_planted.py lm --lm local/qwen2.5-coder-1.5b --module pot --k 3 --min-agreeing 1 --gsm8k 12 --clinc 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from synthboot.lm.calls import store_as_lm_cache  # noqa: E402
from synthboot.spec import Spec  # noqa: E402
from synthboot.stages.dedup import run_dedup  # noqa: E402
from synthboot.stages.grounding import run_grounding  # noqa: E402
from synthboot.stages.validate import run_validate  # noqa: E402
from synthboot.stages.verify import run_verify  # noqa: E402
from synthboot.store import Store  # noqa: E402

# ../shared/bench beside the repository; SYNTHBOOT_BENCH_DATA points elsewhere (a worktree).
SHARED = Path(os.environ.get("SYNTHBOOT_BENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "bench")
# Ten confusable pairs from five CLINC150 domains.
PAIRS = [("freeze_account", "account_blocked"), ("pay_bill", "bill_due"), ("pin_change", "routing"),
         ("report_lost_card", "replacement_card_duration"), ("damaged_card", "card_declined"),
         ("apr", "interest_rate"), ("oil_change_when", "oil_change_how"), ("reminder", "reminder_update"),
         ("alarm", "timer"), ("flight_status", "exchange_rate")]
INTENTS = [i for pair in PAIRS for i in pair]
NEIGHBOUR = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
NO_DEDUP = {"exact": False, "minhash": False, "semantic": False}


def clinc() -> dict[str, list[tuple[str, str]]]:
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    return {part: [(t, i) for t, i in data[part] if i in INTENTS] for part in ("train", "test")}


def gsm8k(part: str) -> list[dict]:
    rows = [json.loads(line) for line in (SHARED / "gsm8k" / f"gsm8k_{part}.jsonl").read_text().splitlines()]
    return [{"question": r["question"], "answer": int(r["answer"].split("####")[-1].strip().replace(",", ""))}
            for r in rows]


def intent_spec(seeds: list[dict], **verify) -> Spec:
    return Spec.model_validate({
        "name": "clinc20", "task": "Banking, card, car, reminder and travel assistant requests labelled with their intent.",
        "fields": {"text": {"type": "str", "description": "What the user said", "input": True},
                   "intent": {"type": "enum", "values": INTENTS, "description": "The user's intent"}},
        "seeds": seeds, "topics": ["requests"], "dedup": NO_DEDUP, "verify": verify})


def math_spec(seeds: list[dict], **verify) -> Spec:
    return Spec.model_validate({
        "name": "gsm8k", "task": "Grade-school math word problems, each with its integer answer.",
        "fields": {"question": {"type": "str", "description": "A math word problem", "input": True},
                   "answer": {"type": "int", "description": "The final integer answer"}},
        "seeds": seeds, "topics": ["math"], "dedup": NO_DEDUP, "verify": verify})


def verify_rows(spec: Spec, rows: list[dict], lm=None, concurrency: int = 2) -> tuple[dict[int, dict], dict]:
    """Run validate, grounding, dedup and verify on `rows` as generated candidates; row index -> decision."""
    with tempfile.TemporaryDirectory() as tmp, Store(tmp, create=True) as store:
        store.save_spec(spec.content_hash(), spec.model_dump(mode="json", by_alias=True))
        store.add_seeds(spec.seeds)
        store.finish_task(key="planted", stage="generate", topic="planted", round=0, call_id=None,
                          items=[{"fields": r} for r in rows], model="planted", temperature=None)
        with store_as_lm_cache(store) as cache:
            v = run_validate(store, spec)
            g = run_grounding(store, spec, None, v.settings_hash)  # no sources: passes every candidate on
            d = run_dedup(store, spec, g.settings_hash)
            started = time.perf_counter()
            result = run_verify(store, spec, lm, d.settings_hash, concurrency=concurrency)
            seconds = time.perf_counter() - started
        ids = {c.item_index: c.id for c in store.candidates(origin="lm")}
        decisions = store.decisions("verify")
        if rows and not decisions:  # a stage the bench does not run would leave verify nothing: not a 100% rejection
            sys.exit(f"verify decided none of {len(rows)} rows (validate {dict(v.rejected)}, dedup decided {d.decided})")
        out = {i: {"kept": decisions[cid].kept, "reason": decisions[cid].reason, "details": decisions[cid].details or {}}
               for i, cid in ids.items() if cid in decisions}
        return out, {"calls": cache.misses, "cached": cache.hits, "seconds": round(seconds, 1),
                     "rejected": dict(result.rejected)}


def rates(decisions: dict[int, dict], wrong: set[int], n: int) -> dict:
    """Rates over all `n` planted rows: a row an earlier stage (validate) rejected is not kept."""
    right = [i for i in range(n) if i not in wrong]
    rejected_wrong = sum(i not in decisions or not decisions[i]["kept"] for i in wrong)
    kept_right = sum(i in decisions and bool(decisions[i]["kept"]) for i in right)
    return {"wrong": len(wrong), "wrong_rejected": rejected_wrong,
            "wrong_rejected_rate": round(rejected_wrong / len(wrong), 3) if wrong else None,
            "right": len(right), "right_kept": kept_right,
            "right_kept_rate": round(kept_right / len(right), 3) if right else None}


def bench_vote(per_intent: int, n_test: int, seed: int, method: str = "classifier", label_texts: bool = True) -> list[dict]:
    data = clinc()
    rng = random.Random(seed)
    by_intent: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        by_intent.setdefault(intent, []).append(text)
    trusted = [{"text": t, "intent": i} for i in INTENTS for t in rng.sample(by_intent[i], per_intent)]
    test = rng.sample(data["test"], n_test)
    out = []
    for swap in ("none", "random", "neighbour"):
        rows = []
        for text, intent in test:
            label = intent if swap == "none" else (
                NEIGHBOUR[intent] if swap == "neighbour" else rng.choice([i for i in INTENTS if i != intent]))
            rows.append({"text": text, "intent": label})
        # The true and the swapped labels run in separate stores: together they would be label
        # conflicts of each other (same text, two labels), which is a different finding.
        decisions, info = verify_rows(intent_spec(trusted, lm_check=False, label_vote={
            "method": method, "label_texts": label_texts}), rows)
        wrong = set() if swap == "none" else set(range(len(rows)))
        out.append({"part": "vote", "method": method, "label_texts": label_texts, "trusted_per_intent": per_intent, "labels": swap, **rates(decisions, wrong, len(rows)),
                    "seconds": info["seconds"], "reasons": info["rejected"]})
    return out


def bench_lm(lm_name: str, n_math: int, n_clinc: int, seed: int, module: str, k: int,
             max_tokens: int = 256, details: Path | None = None, min_agreeing: int | None = None) -> list[dict]:
    from synthboot.lm import make_lm

    rng = random.Random(seed)
    lm = make_lm(lm_name, temperature=0.0, max_tokens=max_tokens, instances=2)
    verify = {"lm": lm_name, "module": module, "self_consistency": k, "max_tokens": max_tokens,
              "min_agreeing": min_agreeing}
    out = []
    if n_math:
        train, test = gsm8k("train"), gsm8k("test")
        problems = rng.sample(test, n_math)
        rows = [dict(p) for p in problems]
        wrong = []
        for i, p in enumerate(problems):
            if i % 2 == 0:
                answer = p["answer"] + rng.choice([-1, 1]) * rng.randint(1, max(2, abs(p["answer"]) // 4))
            else:
                answer = next(q["answer"] for q in rng.sample(test, 20) if q["answer"] != p["answer"])
            wrong.append({"question": p["question"], "answer": answer})
        decisions, info = verify_rows(math_spec(train[:2], **verify), rows + wrong, lm)
        if details is not None:  # every row's verdict with the verifier's values (and programs, with pot)
            details.write_text(json.dumps([{"row": r, "wrong": i >= len(rows), **decisions.get(i, {})}
                                           for i, r in enumerate(rows + wrong)], indent=1, default=str))
        out.append({"part": f"lm:{lm_name}:{module}:k{k}" + (f":min{min_agreeing}" if min_agreeing else ""),
                    "data": "gsm8k",
                    **rates(decisions, set(range(len(rows), 2 * len(rows))), 2 * len(rows)), **info,
                    "predicted_right": sum(d["details"].get("lm", {}).get("fields", {}).get("answer", {}).get("agree", False)
                                           for i, d in decisions.items() if i < len(rows))})
    if n_clinc:
        data = clinc()
        seeds = [{"text": t, "intent": i} for i in INTENTS[:4] for t in [x for x, y in data["train"] if y == i][:1]]
        test = rng.sample(data["test"], n_clinc)
        rows = [{"text": t, "intent": i} for t, i in test] + [{"text": t, "intent": NEIGHBOUR[i]} for t, i in test]
        decisions, info = verify_rows(intent_spec(seeds, label_vote=False, **verify), rows, lm)
        out.append({"part": f"lm:{lm_name}:{module}:k{k}", "data": "clinc150 (neighbour swaps)",
                    **rates(decisions, set(range(len(test), 2 * len(test))), len(rows)), **info})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["vote", "lm"])
    parser.add_argument("--test", type=int, default=300, help="vote: CLINC150 test utterances")
    parser.add_argument("--per-intent", type=int, nargs="+", default=[2, 5, 10], help="vote: trusted rows per intent")
    parser.add_argument("--method", nargs="+", default=["classifier", "neighbours"], choices=["classifier", "neighbours"],
                        help="vote: verify.label_vote.method")
    parser.add_argument("--label-texts", nargs="+", default=["on", "off"], choices=["on", "off"],
                        help="vote: label names (and meanings) as trusted rows, or not")
    parser.add_argument("--lm", default="local")
    parser.add_argument("--gsm8k", type=int, default=12)
    parser.add_argument("--clinc", type=int, default=8)
    parser.add_argument("--module", default="predict", choices=["predict", "cot", "pot"])
    parser.add_argument("--k", type=int, default=1, help="lm: self-consistency samples")
    parser.add_argument("--min-agreeing", type=int, help="lm: samples that must agree (default a strict majority)")
    parser.add_argument("--max-tokens", type=int, default=256, help="lm: the verifier's reply budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--details", type=Path, help="lm: write each GSM8K row's verdict and details here (JSON)")
    args = parser.parse_args(argv)
    if not SHARED.exists():
        sys.exit(f"benchmark data not found at {SHARED}")
    if args.part == "vote":
        results = [r for n in args.per_intent for m in args.method for t in args.label_texts
                   for r in bench_vote(n, args.test, args.seed, m, t == "on")]
    else:
        results = bench_lm(args.lm, args.gsm8k, args.clinc, args.seed, args.module, args.k, args.max_tokens,
                           args.details, args.min_agreeing)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
