"""CLINC150, train on synthetic, test on real: does synthboot's data help a fixed simple learner?

    python bench/clinc_tstr.py [--run /tmp/synthboot-bench/clinc20] [--limit 120] [--lm local]
    python bench/clinc_tstr.py --run DIR --skip-generate      # re-score a run without generating

Twenty CLINC150 intents chosen in confusable groups (INTENTS below), two real seeds per intent
from the real train part. The script writes a spec (utterance -> intent, an enum over the twenty)
next to the run directory, runs synthboot on it (resumable: a killed run continues from its
store), then trains the fixed learner of `synthboot check` (logistic regression on the packaged
MiniLM embeddings) on (a) the seeds alone, (b) the seeds plus synthboot's kept examples, (c) the
real train part of those intents, and scores each on the real test utterances. It also reports
label fidelity (share of kept labels a classifier trained on the real train part agrees with,
cross-fitted), the share of the (a)->(c) gap that (b) closes, and runs the `synthboot check`
feature itself against the real test rows (coverage, precision). Prints a Markdown block for
BENCHMARKS.md and writes the figures as JSON into the run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

DATA = Path(os.environ.get("SYNTHBOOT_BENCH_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "bench"))
CLINC = DATA / "clinc150"

# Twenty intents from four CLINC domains (domains.json), in groups a learner can confuse.
INTENTS = [
    # banking: money in an account vs its movements vs bills
    "balance", "transactions", "spending_history", "pay_bill", "bill_balance", "bill_due",
    # credit cards: the limit vs changing it; a lost card vs a declined one
    "credit_limit", "credit_limit_change", "report_lost_card", "card_declined",
    # kitchen and dining: three things one does with a reservation
    "restaurant_reservation", "cancel_reservation", "confirm_reservation",
    # home: reminders and to-do lists, read vs changed
    "reminder", "reminder_update", "todo_list", "todo_list_update",
    # utility and travel: timers vs alarms; booking a flight vs its status
    "timer", "alarm", "flight_status",
]
# One topic: the conditioned strategy crosses topics with intents, and six domain topics made
# cells such as (flights, bill_due) that no real request fits; the intent alone is the cell.
TOPICS = ["requests a user sends to the assistant"]
# What each intent means, as a user would write it in the spec: the label names alone are ambiguous
# (bill_balance vs balance). A generation call is shown only its own intent's meaning; the LM
# verifier reads them all (`meanings`, spec.py).
GLOSSARY = {
    "balance": "how much money is in an account", "transactions": "the list of recent account transactions",
    "spending_history": "how much the user spent on something over a period", "pay_bill": "pay a bill now",
    "bill_balance": "how much is owed on a bill", "bill_due": "when a bill is due",
    "credit_limit": "what a card's credit limit is", "credit_limit_change": "raise or change a credit limit",
    "report_lost_card": "a card was lost or stolen", "card_declined": "a card was declined or refused",
    "restaurant_reservation": "book a restaurant table", "cancel_reservation": "cancel a restaurant booking",
    "confirm_reservation": "check that a restaurant booking stands", "reminder": "ask what reminders are set",
    "reminder_update": "set or change a reminder", "todo_list": "ask what is on the to-do list",
    "todo_list_update": "add to or remove from the to-do list", "timer": "set a timer for a duration",
    "alarm": "set an alarm for a time of day", "flight_status": "whether a flight is on time or delayed",
}
SEEDS_PER_INTENT = 2


def load_clinc() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The real (utterance, intent) rows of the chosen intents: train part, test part."""
    data = json.loads((CLINC / "data_full.json").read_text())
    wanted = set(INTENTS)
    train = [(u, i) for u, i in data["train"] if i in wanted]
    test = [(u, i) for u, i in data["test"] if i in wanted]
    return train, test


def pick_seeds(train: list[tuple[str, str]], per_intent: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for intent in INTENTS:
        rows = [r for r in train if r[1] == intent]
        out += rng.sample(rows, per_intent)
    return out


def write_spec(path: Path, seeds: list[tuple[str, str]], verify: dict | None = None) -> Path:
    spec = {
        "name": "clinc20-intents",
        "task": ("Things a user types or says to the virtual assistant of a bank and personal helper app, "
                 "each labelled with the user's intent. Utterances are short, informal and lower case, "
                 "like real user requests."),
        "fields": {
            "utterance": {"type": "str", "description": "What the user says: one short request or question",
                          "input": True, "min_length": 5, "max_length": 200},
            "intent": {"type": "enum", "values": INTENTS, "description": "The user's intent",
                       "meanings": GLOSSARY},
        },
        "seeds": [{"utterance": u, "intent": i} for u, i in seeds],
        "topics": TOPICS,
        "generate": {"per_topic": 600, "per_call": 5, "max_tokens": 600, "concurrency": 2},
        "dedup": {"fields": ["utterance"]},
        **({"verify": verify} if verify else {}),
        "split": {"train": 0.8, "dev": 0.1, "test": 0.1, "seed": 42, "stratify": "intent"},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"utterance": u, "intent": i}) + "\n" for u, i in rows))
    return path


def score(run_dir: Path, train, test) -> dict:
    from synthboot.check import metrics as cm
    from synthboot.check import check_run
    from synthboot.embeddings import get_embedder
    from synthboot.status import kept_candidates, run_status
    from synthboot.store import Store

    with Store(run_dir) as store:
        kept = [c.fields for c in kept_candidates(store) if c.fields]
        # The seeds as the run stored them: a re-scored run keeps the seeds it was generated from.
        seeds = [(c.fields["utterance"], c.fields["intent"]) for c in store.candidates(origin="seed") if c.fields]
    synth = [(f["utterance"], f["intent"]) for f in kept]
    model = get_embedder("local")

    def xy(rows):
        return model.encode([u for u, _ in rows]), [i for _, i in rows]

    (tx, ty), (ex, ey), (sx, sy), (kx, ky) = xy(train), xy(test), xy(seeds), xy(synth)
    a = cm.accuracy(sx, sy, ex, ey)
    b = cm.accuracy(np.vstack([sx, kx]), sy + ky, ex, ey)
    c = cm.accuracy(tx, ty, ex, ey)
    s_only = cm.accuracy(kx, ky, ex, ey)
    fidelity = cm.label_fidelity(tx, ty, kx, ky)
    check = check_run(run_dir, run_dir.parent / f"{run_dir.name}-real-test.jsonl", k=5)
    # The feature must say what the bench says: accuracies from the check against the real test
    # rows, label fidelity from a check against the real train rows (the bench's reference).
    [on_test] = check.labels
    [on_train] = check_run(run_dir, run_dir.parent / f"{run_dir.name}-real-train.jsonl", k=5, save=False).labels
    feature = {"acc_seeds": on_test.seeds_accuracy, "acc_seeds_synthetic": on_test.combined_accuracy,
               "acc_synthetic_only": on_test.synthetic_accuracy, "label_fidelity": on_train.fidelity}
    funnel = run_status(run_dir).funnel
    seed_texts = {u.lower().strip() for u, _ in seeds}
    return {
        "generated": funnel.generated, "kept": len(synth),
        "kept_intents": len(set(ky)), "kept_label_counts": dict(Counter(ky).most_common()),
        "kept_seed_copies": sum(1 for u, _ in synth if u.lower().strip() in seed_texts),
        "rejected": {stage: dict(c) for stage, c in funnel.rejected.items()},
        "real_train": len(train), "real_test": len(test), "seeds": len(seeds),
        "acc_seeds": a, "acc_seeds_synthetic": b, "acc_real_train": c, "acc_synthetic_only": s_only,
        "gap_closed": None if None in (a, b, c) or c == a else (b - a) / (c - a),
        "label_fidelity": fidelity.synthetic, "real_cross_fitted_agreement": fidelity.real,
        "coverage_vs_test": check.coverage, "precision_vs_test": check.precision, "k": check.k,
        "check_feature": feature,
        "check_matches_bench": all(feature[key] == value for key, value in
                                   [("acc_seeds", a), ("acc_seeds_synthetic", b), ("acc_synthetic_only", s_only),
                                    ("label_fidelity", fidelity.synthetic)]),
    }


def markdown(r: dict, command: str, gen_s: float | None, load: tuple, when: str) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = [f"`{command}` ({when}; load average before/after {load[0]:.2f} / {load[1]:.2f}"
             + (f"; generation {gen_s / 60:.1f} min" if gen_s is not None else "; re-scored, no generation") + ")",
             "",
             f"Generated {r['generated']}, kept {r['kept']} (covering {r['kept_intents']} of {len(INTENTS)} intents; "
             f"{r['kept_seed_copies']} kept utterances equal a seed). Real train {r['real_train']}, real test "
             f"{r['real_test']}, seeds {r['seeds']}.",
             "",
             "| learner trained on | accuracy on real test |", "|---|---|",
             f"| (a) seeds ({r['seeds']}) | {f(r['acc_seeds'])} |",
             f"| (b) seeds + kept synthetic ({r['seeds'] + r['kept']}) | {f(r['acc_seeds_synthetic'])} |",
             f"| kept synthetic only ({r['kept']}) | {f(r['acc_synthetic_only'])} |",
             f"| (c) real train ({r['real_train']}) | {f(r['acc_real_train'])} |",
             "",
             f"Share of the (a)->(c) gap closed by (b): {f(r['gap_closed'])}. Label fidelity (kept labels a "
             f"real-trained classifier agrees with, cross-fitted): {f(r['label_fidelity'])} (that classifier on "
             f"held-out real train rows: {f(r['real_cross_fitted_agreement'])}). `synthboot check` against the real "
             f"test rows: coverage {f(r['coverage_vs_test'])}, precision {f(r['precision_vs_test'])} (k={r['k']}).",
             "",
             ("`synthboot check` (--real test rows for accuracy, --real train rows for fidelity) reports the same "
              "figures." if r["check_matches_bench"] else
              f"`synthboot check` reports OTHER figures: {r['check_feature']}")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("/tmp/synthboot-bench/clinc20"))
    parser.add_argument("--limit", type=int, default=120, help="candidates asked of the generator")
    parser.add_argument("--lm", default=None, help="generator LM (default: the spec's, the embedded model)")
    parser.add_argument("--skip-generate", action="store_true", help="re-score the run as stored")
    parser.add_argument("--no-lm-check", action="store_true",
                        help="verify labels with the offline label vote only (verify.lm_check: false)")
    parser.add_argument("--no-label-texts", action="store_true",
                        help="the label vote without the labels' names and meanings (verify.label_vote.label_texts: false)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    train, test = load_clinc()
    seeds = pick_seeds(train, SEEDS_PER_INTENT)
    run_dir = args.run.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir.parent / f"{run_dir.name}.yaml"
    write_jsonl(run_dir.parent / f"{run_dir.name}-real-test.jsonl", test)
    write_jsonl(run_dir.parent / f"{run_dir.name}-real-train.jsonl", train)
    gen_s = None
    if not args.skip_generate:
        import synthboot

        verify = {**({"lm_check": False} if args.no_lm_check else {}),
                  **({"label_vote": {"label_texts": False}} if args.no_label_texts else {})}
        write_spec(spec_path, seeds, verify or None)
        started = time.perf_counter()
        synthboot.run(synthboot.load_spec(spec_path), run_dir, lm=args.lm, limit=args.limit)
        gen_s = time.perf_counter() - started
    elif not (run_dir / "synthboot.db").exists():
        sys.exit(f"{run_dir} holds no run to re-score")
    result = score(run_dir, train, test)
    result.update({"limit": args.limit, "lm": args.lm, "generation_s": gen_s, "lm_check": not args.no_lm_check,
                   "label_texts": not args.no_label_texts,
                   "intents": INTENTS, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    (run_dir / "clinc_tstr.json").write_text(json.dumps(result, indent=2))
    command = "python bench/clinc_tstr.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(markdown(result, command.strip(), gen_s, (load_before, os.getloadavg()[0]), result["when"]))


if __name__ == "__main__":
    main()
