"""The `truncated` and `mixed_script` default checks (synthboot.checks) on real, complete texts and on run stores.

Part 1, false alarms on real data (/work/shared/bench, read-only): for each corpus of finished,
human-written texts, the share whose ending `ends_finished` calls unfinished (what `truncated`
would reject if the text sat at its length bound) and the share `mixed_script` rejects with the
corpus's first 5 rows as seeds; then every text of 80+ characters cut at a seeded random point
inside it: the share `ends_finished` calls unfinished (the check's recall on cut texts).

Part 3 (`--scan GLOB`): every run store matching GLOB (opened read-only): its LM candidates'
string fields at their bound (unique values), which of those `ends_finished` calls unfinished
(printed, to read by hand), and how many candidates each new check rejects.

Part 4 (`--speed N`): microseconds per item of the checks that ran before (empty, list items,
answer_leak) and of all of them, over N copies of the example spec's kept-like item.

Part 2, re-filter of run stores (`--store DIR`, repeatable): copies each store, re-runs the
validate stage with the spec stored in it (no LM call), and lists the kept items each new check
rejects.

    PYTHONPATH=src python bench/default_checks.py --store /tmp/demo-qwen-fresh --store /tmp/demo-qwen
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path("/work/shared/bench")
SEEDS = 5


def corpora() -> dict[str, list[tuple[str, str]]]:
    """Corpus name -> (input, output) pairs of finished human-written text."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name in ("seed_tasks", "user_oriented_instructions"):
        rows = [json.loads(line) for line in (BENCH / "self-instruct" / f"{name}.jsonl").open()]
        out[f"self-instruct {name}"] = [(r["instruction"] + "\n" + i["input"], i["output"])
                                        for r in rows for i in r["instances"] if i["output"].strip()]
    gsm = [json.loads(line) for line in (BENCH / "gsm8k" / "gsm8k_test.jsonl").open()]
    out["gsm8k test answers"] = [(r["question"], r["answer"]) for r in gsm]
    clinc = json.loads((BENCH / "clinc150" / "data_full.json").read_text())
    out["clinc150 test utterances"] = [("", u) for u, _ in clinc["test"]]
    with gzip.open(BENCH / "t0-prompts" / "t0_train_50k.jsonl.gz", "rt") as f:
        t0 = [json.loads(line) for _, line in zip(range(5000), f)]
    out["t0 completions (first 5,000)"] = [(r["prompt"], r["completion"]) for r in t0 if r["completion"].strip()]
    lines = (BENCH / "mrpc" / "msr_paraphrase_train.txt").read_text(encoding="utf-8-sig").splitlines()[1:]
    out["mrpc sentences"] = [("", line.split("\t")[3]) for line in lines]
    return out


def false_alarms() -> None:
    from synthboot.checks import ends_finished
    from synthboot.scripts import scripts_of

    rng = random.Random(0)
    print("| corpus | texts | ending called unfinished | mixed_script rejects | cut texts (80+ chars) | cut called unfinished |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, pairs in corpora().items():
        unfinished = [o for _, o in pairs if not ends_finished(o)]
        seeds = {"LATIN"}
        for i, o in pairs[:SEEDS]:
            seeds |= scripts_of(i) | scripts_of(o)
        stray = [o for i, o in pairs[SEEDS:] if scripts_of(o) - seeds - scripts_of(i)]
        long = [o.rstrip() for _, o in pairs if len(o.rstrip()) >= 80]
        cuts = [o[:rng.randrange(20, len(o) - 1)] for o in long]
        caught = sum(not ends_finished(c) for c in cuts)
        print(f"| {name} | {len(pairs):,} | {len(unfinished):,} ({len(unfinished) / len(pairs):.1%}) | "
              f"{len(stray):,} of {len(pairs) - SEEDS:,} | {len(cuts):,} | {caught:,} ({caught / max(1, len(cuts)):.1%}) |")
        endings = Counter(o.rstrip()[-1:] for o in unfinished)
        print(f"|  ending characters of the 'unfinished' finished texts: {endings.most_common(8)} | | | | | |")
        for o in stray[:3]:
            print(f"|  stray script example: {o[:70]!r} | | | | | |")


def refilter(store_dir: Path) -> None:
    from synthboot.stages.validate import run_validate
    from synthboot.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(store_dir, copy)
        store = Store(copy, lock=True)
        spec = store.spec()
        before = store.decisions("validate")
        kept_ids = _kept_ids(store)
        run_validate(store, spec)
        after = store.decisions("validate")
        fields = {c.id: c.fields for c in store.candidates()}
        print(f"\n{store_dir}: {len(before)} validated, {len(kept_ids)} kept before the new checks")
        newly: list[tuple[int, str, Any]] = [(cid, d.reason or "", (d.details or {}).get("failures"))
                                             for cid, d in sorted(after.items())
                                             if before.get(cid) is not None and before[cid].kept and not d.kept]
        print(f"  rejected now (were valid): {len(newly)}; of them kept before: "
              f"{sum(cid in kept_ids for cid, _, _ in newly)}")
        for cid, reason, failures in newly:
            print(f"  #{cid} {reason} kept-before={cid in kept_ids}: {failures}")
            print(f"     {json.dumps(fields[cid], ensure_ascii=False)[:160]}")
        store.close()


def scan(pattern: str, exclude: list[str]) -> None:
    import glob

    from synthboot.checks import ends_finished, mixed_script, string_bound, truncated
    from synthboot.store import Store
    from synthboot.task import Task

    stores = candidates = 0
    at_bound: dict[tuple[str, str], bool] = {}
    rejects: Counter = Counter()
    for db in sorted(glob.glob(pattern, recursive=True)):
        if any(part in db for part in exclude):
            continue
        try:
            store = Store(Path(db).parent, readonly=True)
            spec = store.spec()
            task = Task.of(spec)
            rows = store.candidates(origin="lm")
        except Exception:  # noqa: BLE001 - a store of another version or without a spec: skip it
            continue
        stores += 1
        for c in rows:
            try:
                item = task.schema.validate_item(c.fields).model_dump(mode="json") if c.fields else None
            except ValueError:
                item = None
            if item is None:
                continue
            candidates += 1
            for name in task.schema.names:
                value = item.get(name)
                if task.schema.kind(name) == "str" and isinstance(value, str):
                    bound = string_bound(name, task.schema, spec)
                    if bound - 3 <= len(value) <= bound and bound >= 80:
                        at_bound[name, value] = ends_finished(value)
            for check in (truncated, mixed_script):
                if (failed := check(item, task.schema, spec)) is not None:
                    rejects[failed[0].split(":")[0]] += 1
        store.close()
    unfinished = [(n, v) for (n, v), finished in at_bound.items() if not finished]
    print(f"\n{stores} stores, {candidates} schema-valid LM candidates; {len(at_bound)} distinct texts at their "
          f"bound (80+), {len(unfinished)} called unfinished; rejections: {dict(rejects)}")
    for name, value in unfinished:
        print(f"  {name} ({len(value)}): ...{value[-50:]!r}")
    for (name, value), finished in at_bound.items():
        if finished:
            print(f"  FINISHED at the bound: {name} ({len(value)}): ...{value[-50:]!r}")


def speed(n: int) -> None:
    import time

    from synthboot import checks
    from synthboot.loader import load_spec
    from synthboot.task import Task

    spec = load_spec(Path(__file__).resolve().parents[1] / "examples" / "python-qa.yaml")
    schema = Task.of(spec).schema
    item = {"question": "What is the difference between threads and processes in Python?",
            "answer": "Threads share one memory space; processes do not, so they exchange data by messages. " * 3,
            "difficulty": "hard", "topic": "concurrency"}
    print()
    for label, group in [("before (empty, list items, answer_leak)", checks.CHECKS[:3]), ("all five", checks.CHECKS),
                         ("truncated alone", [checks.truncated]), ("mixed_script alone", [checks.mixed_script])]:
        start = time.perf_counter()
        for _ in range(n):
            for check in group:
                check(item, schema, spec)
        print(f"{label}: {(time.perf_counter() - start) / n * 1e6:.1f} us per item")


def _kept_ids(store: Any) -> set[int]:
    return {cid for cid, _split in store.splits().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", default=[], type=Path, help="a run directory to re-filter (copied)")
    parser.add_argument("--scan", help="a glob of synthboot.db files to scan read-only (part 3)")
    parser.add_argument("--exclude", action="append", default=["/pytest-of-"], help="skip paths holding this")
    parser.add_argument("--speed", type=int, default=0, help="time the checks over N items (part 4)")
    parser.add_argument("--skip-corpora", action="store_true")
    args = parser.parse_args()
    if not args.skip_corpora:
        false_alarms()
    for store_dir in args.store:
        refilter(store_dir)
    if args.scan:
        scan(args.scan, args.exclude)
    if args.speed:
        speed(args.speed)


if __name__ == "__main__":
    main()
