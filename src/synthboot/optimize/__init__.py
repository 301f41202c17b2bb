"""The optimize loop: a DSPy program, DSPy's optimizer and the seed's evaluation protocol.

Protocol (the order is the point):
1. freeze the test split (`splits.frozen = 1`) before any optimizer sees data;
2. baseline: the unoptimized program on dev;
3. compile: the optimizer on train (dev as its validation set where it takes one);
4. optimized: the compiled program on dev;
5. test: baseline and optimized on the synthetic test split and on the real (human) test rows,
   touched here for the first time; the gain on held-out data is the one that counts.

Every LM call (student, judge, optimizer proposals) runs inside `store_as_lm_cache`, under one
`call_scope` per phase, so a re-run is answered from the store with zero calls and each phase's
calls and tokens are read back from `lm_calls`. Scores carry bootstrap intervals; gains are paired
(same examples, before and after), so a user can see whether a gain is noise.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dspy

from synthboot.errors import SynthbootError
from synthboot.lm import is_local, make_lm
from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import StoreCache, call_scope, store_as_lm_cache
from synthboot.optimize.metrics import as_float, bootstrap_ci, make_metric
from synthboot.optimize.programs import Program, load_program, make_optimizer, takes_valset
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.store import PhaseRow, PredictionRow, ScoreRow, Store
from synthboot.view import DatasetView
# The report types and reader live apart: `synthboot status` reads reports without importing DSPy.
from synthboot.optimize_reports import PHASES, OptimizeReport, PhaseStats, Score, optimize_reports  # noqa: F401
from synthboot.task import Task

RAG_PROGRAM = "rag"  # the built-in retrieve-then-answer program over the run's chunks (synthboot.optimize.rag)
EVAL_SPLITS = ("dev", "test", "real_test")


@dataclass
class OptimizeSettings:
    program: str | None = None          # signature string or module:attribute (default: task inputs -> outputs)
    module: str = "cot"                 # predict | cot, for signature strings
    optimizer: str = "bootstrap"        # bootstrap | random_search | mipro | gepa
    optimizer_settings: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None           # default: exact_match for closed-value outputs, else semantic_f1
    threshold: float = 0.5              # pass/fail cut of a metric while bootstrapping demos
    lm: str = "local"                   # the student
    api_base: str | None = None
    judge_lm: str | None = None         # semantic_f1's judge and GEPA's reflection LM (default: the spec's)
    adapter: str | None = None          # json | chat (default: json for the embedded model)
    max_tokens: int = 512
    num_threads: int = 2
    test_file: str | None = None        # JSONL of real labeled examples: the real test set
    round: int = 0                      # growth round (synthboot.optimize.grow)


@dataclass
class Item:
    candidate_id: int
    fields: dict[str, Any]
    origin: str


def load_sets(store: Store) -> dict[str, list[Item]]:
    """train, dev, test (synthetic) and real_test (human): the dataset view's splits (synthboot.view)."""
    sets: dict[str, list[Item]] = {"train": [], "dev": [], "test": [], "real_test": []}
    for split, members in DatasetView(store).members.items():
        for m in members:
            name = "real_test" if split == "test" and m.candidate.origin == "human" else split
            sets[name].append(Item(m.candidate.id, m.fields, m.candidate.origin))
    return sets


def freeze_test(store: Store) -> int:
    """Freeze the test split: from now on a re-split keeps it and sends newcomers to train/dev."""
    return store.freeze("test")


def run_optimize(run_dir: str | Path, settings: OptimizeSettings, progress: Callable[[str], None] | None = None,
                 *, student: dspy.LM | None = None, judge: dspy.LM | None = None,
                 counts: Callable[[str, int, int], None] | None = None) -> OptimizeReport:
    """Run the protocol on a finished run; results go into the run store. See the module docstring.

    `student` and `judge` override `settings.lm` and `settings.judge_lm` with configured `dspy.LM`s.
    `counts(stage, done, total)` follows each evaluation example by example (a progress bar).
    """
    say = progress or (lambda message: None)
    with Store(run_dir, lock=True) as store:
        spec = store.spec()
        schema = Task.of(spec).schema
        if settings.test_file:
            from synthboot.importing import import_examples

            imported = import_examples(store, spec, settings.test_file, "test")
            say(f"real test: {imported.rows} examples from {settings.test_file} ({imported.added} new)")
        freeze_test(store)  # before any optimizer sees data
        if settings.program == RAG_PROGRAM:
            from synthboot.optimize.rag import rag_program

            program = rag_program(store, spec, schema, settings.module)
        else:
            program = load_program(settings.program, schema, settings.module)
        sets = load_sets(store)
        # The data's growth round: the latest round any train/dev example came from.
        rounds = [c.round for c in store.candidates(ids=[i.candidate_id for n in ("train", "dev") for i in sets[n]])]
        settings = replace(settings, round=max([settings.round, *rounds]))
        for name in ("train", "dev"):
            if not sets[name]:
                raise SynthbootError(f"the run has no {name} examples; generate more (synthboot run ... --limit N)")
        report = _run_protocol(store, spec, schema, program, sets, settings, say, student, judge, counts)
        if settings.program == RAG_PROGRAM:
            _record_retrieval_recall(store, report, program, sets)
        return report


def _record_retrieval_recall(store: Store, report: OptimizeReport, program: Program,
                             sets: dict[str, list[Item]]) -> None:
    """The `rag` program's retrieval recall of each example's gold chunk, on dev and test (no LM)."""
    from synthboot.optimize.rag import recall_score, retrieval_recall

    question = program.inputs[0]
    for split in ("dev", "test"):
        items = sets[split]
        values = retrieval_recall(store, program.module, [i.candidate_id for i in items],
                                  [str(i.fields.get(question, "")) for i in items])
        if values:
            n, mean, low, high = recall_score(values)
            store.add_optimize_score(report.run_id, split, "retrieval_recall", n, mean, low, high)
            report.scores[split, "retrieval_recall"] = Score(n, mean, low, high)


def _run_protocol(store: Store, spec: Spec, schema: TaskSchema, program: Program, sets: dict[str, list[Item]],
                  settings: OptimizeSettings, say: Callable[[str], None], student: dspy.LM | None,
                  judge: dspy.LM | None, counts: Callable[[str, int, int], None] | None = None) -> OptimizeReport:
    if student is not None:
        settings = replace(settings, lm=student.model)
    student = student or make_lm(settings.lm, api_base=settings.api_base, max_tokens=settings.max_tokens)
    judge_name = judge.model if judge is not None else settings.judge_lm or spec.judge.lm or spec.generate.lm
    needs_judge = settings.optimizer == "gepa" or _metric_name(settings, schema, program) == "semantic_f1" \
        or (settings.optimizer == "mipro" and settings.judge_lm is not None)  # MIPROv2's prompt model
    if needs_judge and judge is None:
        judge = student if judge_name == settings.lm else make_lm(
            judge_name, api_base=spec.judge.api_base if settings.judge_lm is None else None, max_tokens=600)
    adapter = _adapter(settings)
    metric_name = _metric_name(settings, schema, program)
    metric = make_metric(metric_name, fields=program.outputs, inputs=program.inputs, threshold=settings.threshold,
                         judge_lm=judge, judge_adapter=JSON_ADAPTER if judge and is_local(judge_name) else None)
    optimizer, compile_kwargs = make_optimizer(settings.optimizer, metric, settings.optimizer_settings,
                                               num_threads=settings.num_threads, reflection_lm=judge, task_lm=student)
    examples = {name: [_example(item.fields, program.inputs) for item in items] for name, items in sets.items()}
    recorded = {**asdict(settings), "metric": metric_name, "program": settings.program or _default_program(schema),
                "judge_lm": judge_name if needs_judge else None,
                "data": {name: [i.candidate_id for i in items] for name, items in sets.items()}}
    key = hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()[:16]
    run_id = _start_run(store, key, settings.round, recorded)
    use_valset = takes_valset(optimizer)
    _record_inputs(store, run_id, {"trainset": sets["train"], "valset": sets["dev"] if use_valset else []})
    report = OptimizeReport(run_id, settings.round, recorded, None)
    evaluations: dict[tuple[str, str], dspy.Prediction] = {}
    try:
        with store_as_lm_cache(store) as cache, dspy.context(lm=student, **({"adapter": adapter} if adapter else {})):
            with _phase(store, cache, report, "baseline"):
                say(f"baseline on dev ({len(sets['dev'])} examples)")
                evaluations["dev", "baseline"] = _evaluate(program.module, examples["dev"], metric, settings,
                                                           _counter(counts, "optimize: baseline on dev"))
            with _phase(store, cache, report, "compile"):
                say(f"compile: {settings.optimizer} on train ({len(sets['train'])} examples"
                    + (", dev as valset)" if use_valset else ")"))
                kwargs = {"trainset": examples["train"], **compile_kwargs}
                if use_valset:
                    kwargs["valset"] = examples["dev"]
                    if settings.optimizer == "mipro" and len(examples["dev"]) < 35 \
                            and not {"minibatch", "minibatch_size"} & compile_kwargs.keys():
                        kwargs["minibatch"] = False  # MIPROv2's minibatches of 35 refuse a smaller dev set
                optimized = optimizer.compile(program.module.deepcopy(), **kwargs)
            path = Path(store.run_dir) / "programs" / f"optimized-{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            optimized.save(str(path))
            report.program_path = str(path.relative_to(store.run_dir))
            with _phase(store, cache, report, "optimized"):
                say("optimized on dev")
                evaluations["dev", "optimized"] = _evaluate(optimized, examples["dev"], metric, settings,
                                                            _counter(counts, "optimize: optimized on dev"))
            with _phase(store, cache, report, "test"):
                for split in ("test", "real_test"):
                    if examples[split]:
                        say(f"final: baseline and optimized on {split} ({len(examples[split])} examples)")
                        for name, module in (("baseline", program.module), ("optimized", optimized)):
                            evaluations[split, name] = _evaluate(module, examples[split], metric, settings,
                                                                 _counter(counts, f"optimize: {name} on {split}"))
    except BaseException as exc:
        store.fail_optimize_run(run_id, f"{type(exc).__name__}: {exc}")
        raise
    _finish_run(store, report, sets, evaluations)
    return report


def _metric_name(settings: OptimizeSettings, schema: TaskSchema, program: Program) -> str:
    if settings.metric:
        return settings.metric
    closed = set(schema.enum_fields()) | {n for n, f in schema.model.model_fields.items()
                                          if f.annotation in (int, float, bool)}
    return "exact_match" if all(f in closed for f in program.outputs) else "semantic_f1"


def _adapter(settings: OptimizeSettings) -> dspy.Adapter | None:
    choice = settings.adapter or ("json" if is_local(settings.lm) else None)
    if choice is None:
        return None
    if choice not in ("json", "chat"):
        raise SynthbootError(f"unknown --adapter {choice!r}; choose json or chat")
    # The embedded model follows a JSON grammar reliably and ignores ChatAdapter's field markers.
    return JSON_ADAPTER if choice == "json" else dspy.ChatAdapter()


def _default_program(schema: TaskSchema) -> str:
    return f"{', '.join(schema.inputs)} -> {', '.join(schema.outputs)}"


def _example(fields: dict[str, Any], inputs: list[str]) -> dspy.Example:
    return dspy.Example(**fields).with_inputs(*inputs)


def _evaluate(module: dspy.Module, examples: list[dspy.Example], metric: Callable,
              settings: OptimizeSettings, on_progress: Callable[[int, int], None] | None = None) -> dspy.Prediction:
    if on_progress is not None:
        metric = _counted(metric, len(examples), on_progress)
    evaluate = dspy.Evaluate(devset=examples, metric=metric, num_threads=settings.num_threads,
                             display_progress=False, max_errors=len(examples) + 1, provide_traceback=False)
    result = evaluate(module)
    if on_progress is not None:
        on_progress(len(examples), len(examples))  # examples whose program failed never reach the metric
    return result


def _counter(counts: Callable[[str, int, int], None] | None, stage: str) -> Callable[[int, int], None] | None:
    return None if counts is None else (lambda done, total: counts(stage, done, total))


def _counted(metric: Callable, total: int, on_progress: Callable[[int, int], None]) -> Callable:
    """The metric, reporting (scored, total) after each example it scores."""
    lock, done = threading.Lock(), [0]
    on_progress(0, total)

    def metric_counting(example, prediction, trace=None):
        try:
            return metric(example, prediction, trace)
        finally:
            with lock:
                done[0] += 1
                on_progress(min(done[0], total), total)

    return metric_counting


@contextmanager
def _phase(store: Store, cache: StoreCache, report: OptimizeReport, phase: str) -> Iterator[None]:
    started, misses = time.perf_counter(), cache.misses
    with call_scope(f"optimize:{phase}") as scope:
        yield
    ids = sorted(set(scope.call_ids))
    tokens = store.call_totals(ids=ids)[0]
    report.phases.append(PhaseStats(phase, len(ids), cache.misses - misses, tokens.prompt_tokens,
                                    tokens.completion_tokens, round(time.perf_counter() - started, 2)))


def _start_run(store: Store, key: str, round_: int, recorded: dict[str, Any]) -> int:
    """The run's row, created or reset: a re-run with the same settings and data replaces its results."""
    return store.start_optimize_run(key, round_, recorded)


def _record_inputs(store: Store, run_id: int, roles: dict[str, list[Item]]) -> None:
    store.record_optimize_inputs(run_id, {role: [i.candidate_id for i in items] for role, items in roles.items()})


def _finish_run(store: Store, report: OptimizeReport, sets: dict[str, list[Item]],
                evaluations: dict[tuple[str, str], dspy.Prediction]) -> None:
    per_example: dict[tuple[str, str], list[float]] = {}
    predictions = []
    for (split, name), result in evaluations.items():
        scores = []
        for item, (_, pred, score) in zip(sets[split], result.results, strict=True):
            value = as_float(score)
            scores.append(value)
            fields = pred.toDict() if hasattr(pred, "toDict") else dict(pred)
            predictions.append(PredictionRow(split, name, item.candidate_id, json.dumps(fields, default=str), value,
                                             None if fields else "the program raised or its output did not parse"))
        per_example[split, name] = scores
        report.scores[split, name] = Score(len(scores), *bootstrap_ci(scores))
    for split in EVAL_SPLITS:
        if (split, "baseline") in per_example and (split, "optimized") in per_example:
            diffs = [o - b for b, o in zip(per_example[split, "baseline"], per_example[split, "optimized"])]
            report.scores[split, "gain"] = Score(len(diffs), *bootstrap_ci(diffs))
    store.finish_optimize_run(report.run_id, report.program_path, predictions,
                              [ScoreRow(split, name, sc.n, sc.mean, sc.low, sc.high)
                               for (split, name), sc in report.scores.items()],
                              [PhaseRow(p.phase, p.calls, p.calls_made, p.prompt_tokens, p.completion_tokens, p.seconds)
                               for p in report.phases])


def load_optimized(run_dir: str | Path, report: OptimizeReport | None = None) -> dspy.Module:
    """The optimized program of the latest (or the given) optimize run, rebuilt and loaded."""
    with Store(run_dir) as store:
        report = report or next(iter(optimize_reports(store, latest_only=True)), None)
        if report is None:
            raise SynthbootError(f"{run_dir} has no finished optimize run: run `synthboot optimize` first")
        spec = store.spec()
        schema = Task.of(spec).schema
        if report.program_path is None:
            raise SynthbootError(f"optimize run {report.run_id} saved no program")
        s = report.settings
        if s["program"] == RAG_PROGRAM:
            from synthboot.optimize.rag import rag_program

            program = rag_program(store, spec, schema, s["module"])
        else:
            program = load_program(s["program"], schema, s["module"])
    program.module.load(str(Path(run_dir) / report.program_path))
    return program.module
