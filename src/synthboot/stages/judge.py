"""Judge: an LLM-as-judge score (1-5) with reasoning per example; a threshold filters.

The judge's calls go through the run store like every other LM call, so changing the threshold and
re-running decides again from stored verdicts without a single new call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

import dspy
from dspy.utils.exceptions import LMError

from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.lm.failures import FailureStreak, fatal_error
from synthboot.spec import Spec
from synthboot.stages import StageResult, decide_concurrently, passed, settings_hash
from synthboot.store import Candidate, Decision, Store

STAGE = "judge"
DEFAULT_RUBRIC = ("Score 5 for an accurate, specific, unambiguous example whose output fully and correctly answers "
                  "its input; 3 for acceptable but shallow; 1 for wrong, vague, or off-task.")


class JudgeQuality(dspy.Signature):
    """Judge the quality of one example of a dataset for the task below, on a 1-5 scale.
    Check that it is factually correct, specific, unambiguous, and that its output fully answers its input."""

    task: str = dspy.InputField(desc="What the dataset is for")
    rubric: str = dspy.InputField(desc="How to score")
    example: str = dspy.InputField(desc="The example to judge, as JSON")
    reasoning: str = dspy.OutputField(desc="Why this score was assigned, in one or two sentences")
    quality_score: Literal[1, 2, 3, 4, 5] = dspy.OutputField(desc="1=poor, 2=weak, 3=acceptable, 4=good, 5=excellent")


def judge_one(judge: dspy.Module, lm: dspy.LM, spec: Spec, fields: dict) -> tuple[int, str]:
    with dspy.context(lm=lm, adapter=JSON_ADAPTER), call_scope(STAGE):
        out = judge(task=spec.task, rubric=spec.judge.rubric or DEFAULT_RUBRIC,
                    example=json.dumps(fields, ensure_ascii=False), config={"temperature": 0.0})
    return int(out.quality_score), str(out.reasoning)


def run_judge(store: Store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, *, concurrency: int = 1,
              on_progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> StageResult:
    """Score the candidates verify kept; keep those scoring at least the threshold.

    `should_stop` (a budget) is asked before each verdict; those not started stay undecided.

    With the judge disabled every candidate passes with no score, so later stages see one shape.
    """
    enabled = spec.judge.enabled and lm is not None
    stage_hash = settings_hash(upstream_hash, STAGE, spec.judge.model_dump() if enabled else "off",
                               lm.model if enabled and lm else None)
    result = StageResult(STAGE, stage_hash)
    existing = store.decisions(STAGE)
    todo = [c for c in passed(store, "verify", upstream_hash)
            if (d := existing.get(c.id)) is None or d.settings_hash != stage_hash]
    if not enabled:
        store.write_decisions(STAGE, stage_hash, [Decision(c.id, True, details={"judge": "off"}) for c in todo])
        result.decided = result.kept = len(todo)
        return result
    assert lm is not None  # enabled
    judge = dspy.Predict(JudgeQuality)
    streak = FailureStreak(STAGE)  # a server that fails every call stops the stage
    fatal: list[Exception] = []

    def one(cand: Candidate) -> Decision | None:
        if (should_stop is not None and should_stop()) or streak.tripped or fatal:
            return None
        try:
            score, reasoning = judge_one(judge, lm, spec, cand.fields or {})
        except LMError as exc:
            # The LM failed (after its retries), not the verdict: the candidate stays undecided, so
            # the next run judges it again instead of rejecting it for the server's fault.
            store.add_failure(purpose=STAGE, task_key=f"judge:{cand.id}", model=lm.model, error=exc)
            streak.failed(exc)
            if (error := fatal_error(exc, lm.model)) is not None:
                fatal.append(error)
            return None
        except Exception as exc:  # a verdict that does not parse is a reason, not a crash
            store.add_failure(purpose=STAGE, task_key=f"judge:{cand.id}", model=lm.model, error=exc)
            return Decision(cand.id, False, "judge_error", {"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        streak.succeeded()
        kept = score >= spec.judge.threshold
        return Decision(cand.id, kept, None if kept else "low_judge_score",
                        {"reasoning": reasoning, "threshold": spec.judge.threshold}, score=score)

    decide_concurrently(store, STAGE, stage_hash, result, one, todo, concurrency=concurrency, on_progress=on_progress)
    if fatal:
        raise fatal[0]
    if streak.tripped:
        raise streak.error(lm.model, spec.judge.api_base or spec.generate.api_base)
    return result
