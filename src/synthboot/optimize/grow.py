"""Failure-driven growth: more data where the optimized program fails, then optimize again.

One round:
1. take the dev examples the latest optimized program gets wrong (score below the threshold);
2. ask the generator for new examples aimed at them: batches on the failures' topics, with the
   failures' difficulty mix and the failing examples themselves as negative guidance (match the
   pattern, never copy or paraphrase them);
3. freeze every current split row, so growth only adds (the test split is never touched), and run
   the new candidates through every filter and the split stage (`synthboot.run`: finished work is
   answered from the store); frozen rows make the split stage send newcomers to train and dev only,
   and dedup, which compares each newcomer with every earlier kept example, keeps near-duplicates
   of test items out;
4. optimize again with the same settings, as round N.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import dspy

from synthboot.errors import SynthbootError
from synthboot.importing import near_duplicates
from synthboot.optimize import OptimizeReport, OptimizeSettings, optimize_reports, run_optimize
from synthboot.spec import Spec
from synthboot.stages.generate import GenerationTask
from synthboot.store import Store
from synthboot.view import DatasetView
from synthboot.task import Task

MAX_SHOWN_FAILURES = 5


@dataclass
class RoundResult:
    round: int
    failures: int
    asked: int
    generated: int
    added: dict[str, int] = field(default_factory=dict)     # split -> new examples of this round
    test_near_duplicates: int = 0                           # should stay 0: dedup keeps them out
    report: OptimizeReport | None = None


@dataclass
class GrowResult:
    baseline: OptimizeReport
    rounds: list[RoundResult] = field(default_factory=list)
    stopped: str | None = None


def failing_examples(store: Store, report: OptimizeReport, threshold: float) -> list[tuple[int, dict, str | None]]:
    """(candidate id, fields, topic) of the dev examples the optimized program scored below `threshold`."""
    ids = [p.candidate_id for p in store.optimize_predictions(report.run_id, "dev")
           if p.program == "optimized" and p.score is not None and p.score < threshold]
    return [(c.id, c.fields or {}, c.topic or (c.fields or {}).get("topic")) for c in store.candidates(ids=ids)]


def plan_growth(spec: Spec, failures: list[tuple[int, dict, str | None]], round_: int,
                per_round: int | None) -> list[GenerationTask]:
    """Batches on the failures' topics, in proportion to how often each topic fails."""
    schema = Task.of(spec).schema
    per_call = spec.generate.per_call
    total = per_round or max(per_call, 2 * len(failures))
    topics = Counter(t if t in spec.topics else spec.topics[0] for _, _, t in failures)
    enums = {name: Counter(str(f.get(name)) for _, f, _ in failures if f.get(name) is not None)
             for name in schema.enum_fields()}
    mix = "; ".join(f"{name}: " + ", ".join(f"{v} ({n})" for v, n in counts.most_common())
                    for name, counts in enums.items() if counts)
    shown = [f for _, f, _ in failures[:MAX_SHOWN_FAILURES]]
    guidance = (f"Failure-driven round {round_}: a program trained on this data still gets examples like the ones "
                f"below wrong. Write NEW examples that exercise the same kind of difficulty"
                + (f" (failures by {mix})" if mix else "")
                + ", so the program can learn it. Do NOT copy or paraphrase these failing examples; they are "
                  "negative guidance, not templates:\n" + json.dumps(shown, ensure_ascii=False, indent=1))
    tasks: list[GenerationTask] = []
    for topic, n in topics.most_common():
        want = max(1, round(total * n / len(failures)))
        for b in range(math.ceil(want / per_call)):
            tasks.append(GenerationTask(key=f"grow:r{round_}:{topic}:{b}", topic=topic,
                                        count=min(per_call, want - b * per_call), round=round_, guidance=guidance))
    return tasks


def run_grow(run_dir: str | Path, *, rounds: int = 1, per_round: int | None = None,
             settings: OptimizeSettings | None = None, progress: Callable[[str], None] | None = None,
             generator: dspy.LM | None = None, student: dspy.LM | None = None,
             counts: Callable[[str, int, int], None] | None = None) -> GrowResult:
    """Grow and re-optimize for `rounds` rounds, starting from the latest optimize run.

    `generator` and `student` override the spec's generator and the optimize run's student LM;
    `counts(stage, done, total)` follows the optimize evaluations (a progress bar).
    """
    say = progress or (lambda message: None)
    with Store(run_dir) as store:
        latest = next(iter(optimize_reports(store, latest_only=True)), None)
        if (store.latest_spec() or {}).get("sources"):
            raise SynthbootError("grow does not support a spec with `sources` yet: raise sources.per_chunk and run again")
    if latest is None:
        if settings is None:
            raise SynthbootError(f"{run_dir} has no optimize run to grow from: run `synthboot optimize` first")
        say("no optimize run yet: optimizing first (round 0)")
        latest = run_optimize(run_dir, settings, progress=say, student=student, counts=counts)
    settings = settings or settings_of(latest)
    result = GrowResult(latest)
    for _ in range(rounds):
        round_result = _grow_once(Path(run_dir), latest, settings, per_round, say, generator, student, counts)
        result.rounds.append(round_result)
        if round_result.report is None:
            result.stopped = "no dev failures left to grow from" if not round_result.failures else \
                "no new example passed the filters"
            break
        latest = round_result.report
    return result


def settings_of(report: OptimizeReport) -> OptimizeSettings:
    """The settings an optimize run was made with (its real test set is already in the store)."""
    names = {f.name for f in fields(OptimizeSettings)}
    kept = {k: v for k, v in report.settings.items() if k in names}
    return OptimizeSettings(**{**kept, "test_file": None})


def _grow_once(run_dir: Path, latest: OptimizeReport, settings: OptimizeSettings, per_round: int | None,
               say: Callable[[str], None], generator: dspy.LM | None, student: dspy.LM | None,
               counts: Callable[[str, int, int], None] | None = None) -> RoundResult:
    import synthboot
    from synthboot.lm import make_lm
    from synthboot.lm.calls import store_as_lm_cache
    from synthboot.stages.generate import run_generate

    round_ = latest.round + 1
    with Store(run_dir, lock=True) as store:
        spec = store.spec()
        failures = failing_examples(store, latest, settings.threshold)
        result = RoundResult(round_, len(failures), 0, 0)
        if not failures:
            return result
        tasks = plan_growth(spec, failures, round_, per_round)
        result.asked = sum(t.count for t in tasks)
        say(f"round {round_}: {len(failures)} dev failures -> asking for {result.asked} new examples")
        store.freeze()  # growth only adds
        with store_as_lm_cache(store):
            gen_lm = generator or make_lm(spec.generate.lm, api_base=spec.generate.api_base, temperature=spec.generate.temperature,
                             max_tokens=spec.generate.max_tokens, instances=spec.generate.concurrency)
            generated = run_generate(store, spec, gen_lm, tasks, concurrency=spec.generate.concurrency)
        result.generated = generated.candidates
        run_settings = store.get_meta("run_settings", {}) or {}
    # Every filter and the split, exactly as a pipeline run does them (finished work costs nothing).
    synthboot.run(spec, run_dir, limit=run_settings.get("limit"), lm=generator)
    with Store(run_dir) as store:
        splits = DatasetView(store).split_of
        grown = [c.id for c in store.candidates(origin="lm") if c.round == round_ and c.id in splits]
        result.added = dict(Counter(splits[cid] for cid in grown))
        if result.added.get("test"):
            raise AssertionError("growth put examples in the test split")  # the split stage's contract, checked
        test_ids = [cid for cid, split in splits.items() if split == "test"]
        result.test_near_duplicates = len(near_duplicates(store, spec, grown, test_ids))
    if not grown:
        return result
    say(f"round {round_}: added {result.added}; optimizing again")
    result.report = run_optimize(run_dir, replace(settings, round=round_), progress=say, student=student,
                                 counts=counts)
    return result
