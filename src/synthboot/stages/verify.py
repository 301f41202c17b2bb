"""Verify: is each candidate's output right for its input?

Runs after dedup, before the judge. A list of checks decides each candidate; the first that
rejects gives the reason, and every check's findings are kept in the decision's details:

- `label_vote` (offline, no LM; specs with enum outputs): a nearest-neighbour vote in embedding
  space over the seeds, imported human rows and candidates verify already kept
  (synthboot.label_vote). Rejects `label_conflict:<field>` (the same input carries another label)
  and `label_vote:<field>` (another label's nearest rows are clearly closer).
- `lm` (the verifier): a DSPy program built from the task signature (`inputs -> checked outputs`,
  as `synthboot.optimize.programs.load_program` builds it for optimize) predicts the checked output fields
  from the input fields alone, on `verify.lm`; each field is compared with the generated value
  (synthboot.agreement). Rejects `inconsistent:<field>` with both values in the details. With
  `self_consistency: k`, k sampled predictions (distinct calls, each stored) and a field agrees
  only where a strict majority of them (or `min_agreeing` of them) agrees with the generated value.

Checked fields default to every output except the diversity field (an attribute like difficulty
describes the example, it is not its answer) and a field named `topic`; `verify.fields` chooses.

Every LM call goes through the run store (synthboot.lm.calls), so a re-run makes no call, and a
change of verify settings decides again from the stored candidates without generating anything.
To add a check, write a `BatchCheck` (decides many candidates at once, offline) or a `CallCheck`
(one candidate at a time, may call an LM) and add it in `make_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import dspy
from dspy.utils.exceptions import LMError

from synthboot import agreement
from synthboot.embeddings import get_embedder
from synthboot.label_vote import Labelled, label_texts, vote
from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.lm.failures import FailureStreak, fatal_error
from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages import StageResult, decide_concurrently, passed, settings_hash, write_counted
from synthboot.stages.verify_pot import POT_VERSION, ProgramOfThought, numeric_fields
from synthboot.store import Candidate, Decision, Store
from synthboot.task import Task

STAGE = "verify"


@dataclass
class Outcome:
    """One check's finding on one candidate: `reason` None passes."""

    reason: str | None
    details: dict[str, Any] = field(default_factory=dict)
    score: float | None = None


class BatchCheck(Protocol):
    name: str

    def settings(self) -> Any: ...

    def run(self, store: Store, candidates: list[Candidate], stage_hash: str) -> dict[int, Outcome]: ...


class CallCheck(Protocol):
    name: str

    def settings(self) -> Any: ...

    def check(self, cand: Candidate) -> Outcome:
        """Raises `LMError` when the LM failed: the candidate stays undecided for the next run."""


def checked_fields(spec: Spec, schema: TaskSchema) -> list[str]:
    if spec.verify.fields is not None:
        return list(spec.verify.fields)
    attribute = spec.diversity.field or ("difficulty" if "difficulty" in schema.enum_fields() else None)
    return [f for f in schema.outputs if f != attribute and f != "topic"]


def input_text(fields: dict[str, Any], schema: TaskSchema) -> str:
    return "\n".join(str(fields.get(n, "")) for n in schema.inputs)


# -- the offline label check -----------------------------------------------------------------

class LabelVoteCheck:
    name = "label_vote"

    def __init__(self, spec: Spec, schema: TaskSchema, fields: list[str]):
        self.settings_ = spec.verify.label_vote
        self.spec, self.schema = spec, schema
        enums = schema.enum_fields()
        self.fields = [f for f in fields if f in enums]

    def settings(self) -> Any:
        return {"v": 1, "fields": self.fields, **self.settings_.model_dump()}

    def run(self, store: Store, candidates: list[Candidate], stage_hash: str) -> dict[int, Outcome]:
        outcomes = {c.id: Outcome(None) for c in candidates}
        if not self.fields or not candidates:
            return outcomes
        verified = {cid for cid, d in store.decisions(STAGE).items() if d.settings_hash == stage_hash and d.kept}
        trusted_rows = [c for c in store.candidates() if c.fields and (c.origin in ("seed", "human") or c.id in verified)]
        embedder = get_embedder(self.settings_.embedder)
        texts = {c.id: input_text(c.fields or {}, self.schema) for c in candidates}
        cand_rows = embedder.encode([texts[c.id] for c in candidates])
        for name in self.fields:
            values = set(self.schema.enum_fields()[name])
            trusted = [(t.id, t.fields or {}) for t in trusted_rows if str((t.fields or {}).get(name)) in values]
            trusted_emb = embedder.encode([input_text(f, self.schema) for _, f in trusted])
            named = label_texts({v: self.spec.meaning(name, v) for v in self.schema.enum_fields()[name]},
                                {str(f[name]) for _, f in trusted}) if self.settings_.label_texts else []
            findings = vote([Labelled(c.id, texts[c.id], str((c.fields or {}).get(name))) for c in candidates],
                            [Labelled(tid, input_text(f, self.schema), str(f[name])) for tid, f in trusted],
                            cand_rows, trusted_emb, self.settings_,
                            [Labelled(-1, text, label) for label, text in named],
                            embedder.encode([text for _, text in named]) if named else None)
            for cid, finding in findings.items():
                if outcomes[cid].reason is None:
                    outcomes[cid] = Outcome(f"{finding.reason}:{name}", {"field": name, **finding.details})
        return outcomes


# -- the LM verifier -------------------------------------------------------------------------

class LMCheck:
    name = "lm"

    def __init__(self, spec: Spec, schema: TaskSchema, lm: dspy.LM, fields: list[str]):
        from synthboot.optimize.programs import load_program  # late: programs imports the optimizers' registry

        self.spec, self.schema, self.lm, self.fields = spec, schema, lm, fields
        # `pot`: numeric fields are computed by a program the verifier writes (stages.verify_pot),
        # any other checked field is predicted as with `predict`.
        self.pot = ProgramOfThought(spec, schema, numeric_fields(schema, fields)) \
            if spec.verify.module == "pot" and numeric_fields(schema, fields) else None
        predicted = [f for f in fields if self.pot is None or f not in self.pot.fields]
        ref = f"{', '.join(schema.inputs)} -> {', '.join(predicted)}"
        self.program = load_program(ref, schema, "predict" if spec.verify.module == "pot" else spec.verify.module
                                    ).module if predicted else None
        self.k = spec.verify.self_consistency
        self.needed = spec.verify.min_agreeing or self.k // 2 + 1  # default: a strict majority
        self.rules = {f: self._rule(f) for f in fields}
        needs_embedder = any(r["match"] == "embedding" for r in self.rules.values())
        self.embedder = get_embedder(spec.verify.embedder) if needs_embedder else None

    def _rule(self, name: str) -> dict[str, Any]:
        kind = self.schema.kind(name)
        override = self.spec.verify.per_field.get(name)
        match = (override.match if override else None) or {"float": "number", "str": "embedding",
                                                              "list": "jaccard"}.get(kind, "exact")
        default_threshold = self.spec.verify.list_threshold if kind == "list" else self.spec.verify.text_threshold
        threshold = override.threshold if override and override.threshold is not None else default_threshold
        tolerance = override.tolerance if override and override.tolerance is not None else self.spec.verify.tolerance
        return {"kind": kind, "match": match, "threshold": threshold, "tolerance": tolerance}

    def settings(self) -> Any:
        v = self.spec.verify
        return {"v": 1, "lm": self.lm.model, "module": v.module, "rules": self.rules, "k": self.k,
                "temperature": v.temperature if self.k > 1 else 0.0, "max_tokens": v.max_tokens,
                "embedder": v.embedder if self.embedder else None,
                **({"pot": {"fields": self.pot.fields, "v": POT_VERSION}} if self.pot else {}),
                **({"min_agreeing": v.min_agreeing} if v.min_agreeing is not None else {})}

    def _config(self, sample: int) -> dict[str, Any]:
        config: dict[str, Any] = {"temperature": 0.0, "max_tokens": self.spec.verify.max_tokens}
        if self.k > 1:
            # Distinct requests, so distinct stored calls: DSPy's rollout id is part of the cache
            # key, and a seed makes the embedded model (seeded from the request) sample anew.
            config.update(temperature=self.spec.verify.temperature, rollout_id=sample, seed=1000 + sample)
        return config

    def predict(self, fields: dict[str, Any], sample: int = 0) -> dict[str, Any]:
        """The predicted checked fields; with `pot`, also `_programs`: field -> program, value, error."""
        inputs = {n: fields.get(n) for n in self.schema.inputs}
        predicted: dict[str, Any] = {}
        with dspy.context(lm=self.lm, adapter=JSON_ADAPTER), call_scope(STAGE):
            if self.program is not None:
                out = self.program(**inputs, config=self._config(sample))
                predicted = {f: out.get(f) for f in self.fields if self.pot is None or f not in self.pot.fields}
            if self.pot is not None:
                computed = self.pot.compute(inputs, self._config(sample))
                predicted.update({f: c.value for f, c in computed.items()})
                predicted["_programs"] = {f: c.as_dict() for f, c in computed.items()}
        return predicted

    def check(self, cand: Candidate) -> Outcome:
        fields = cand.fields or {}
        samples: list[dict[str, Any]] = []
        errors: list[str] = []
        for i in range(self.k):
            try:
                samples.append(self.predict(fields, i))
            except LMError:
                raise
            except Exception as exc:  # a prediction that does not parse is a disagreement, not a crash
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        if not samples:
            return Outcome("verify_error", {"error": errors[0]})
        details: dict[str, Any] = {}
        failed: str | None = None
        lowest = 1.0
        for name in self.fields:
            rule = self.rules[name]
            found = [agreement.compare(rule["kind"], fields.get(name), s.get(name), match=rule["match"],
                                       threshold=rule["threshold"], tolerance=rule["tolerance"],
                                       embedder=self.embedder) for s in samples]
            agreeing = sum(a.agree for a in found)
            agree = agreeing >= self.needed  # unparsed samples count as disagreeing
            score = found[0].score if self.k == 1 else agreeing / self.k
            lowest = min(lowest, score)
            details[name] = {"generated": fields.get(name),
                             "predicted": samples[0].get(name) if self.k == 1 else [s.get(name) for s in samples],
                             "agree": agree, "score": score, "match": found[0].match}
            if self.k > 1:
                details[name]["votes"] = f"{agreeing}/{self.k}"
            programs = [s["_programs"][name] for s in samples if name in s.get("_programs", {})]
            if programs:
                details[name]["programs"] = programs
            if not agree and failed is None:
                failed = name
        if errors:
            details["errors"] = errors
        return Outcome(None if failed is None else f"inconsistent:{failed}", {"fields": details}, lowest)


def make_checks(spec: Spec, schema: TaskSchema, lm: dspy.LM | None) -> tuple[list[BatchCheck], list[CallCheck]]:
    """The checks verify runs, in order: the offline ones on the whole batch, then one candidate at a time."""
    fields = checked_fields(spec, schema)
    batch: list[BatchCheck] = []
    calls: list[CallCheck] = []
    if spec.verify.label_vote.enabled:
        batch.append(LabelVoteCheck(spec, schema, fields))
    if spec.verify.lm_check and lm is not None and fields:
        calls.append(LMCheck(spec, schema, lm, fields))
    return batch, calls


# -- the stage -------------------------------------------------------------------------------

def run_verify(store: Store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, *, concurrency: int = 1,
               on_progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> StageResult:
    """Verify the candidates dedup kept; keep those every check passes.

    `lm` is the verifier (None: the LM check is off). `should_stop` (a budget) is asked before each
    candidate's calls; those not started stay undecided. With verify disabled every candidate
    passes, so later stages see one shape.
    """
    schema = Task.of(spec).schema
    batch_checks, call_checks = make_checks(spec, schema, lm) if spec.verify.enabled else ([], [])
    checks: list[BatchCheck | CallCheck] = [*batch_checks, *call_checks]
    stage_hash = settings_hash(upstream_hash, STAGE, [(c.name, c.settings()) for c in checks]
                               if spec.verify.enabled else "off")
    result = StageResult(STAGE, stage_hash)
    existing = store.decisions(STAGE)
    todo = [c for c in passed(store, "dedup", upstream_hash)
            if (d := existing.get(c.id)) is None or d.settings_hash != stage_hash]
    if not spec.verify.enabled:
        write_counted(store, STAGE, stage_hash, result, [Decision(c.id, True, details={"verify": "off"}) for c in todo])
        return result

    found: dict[int, dict[str, Any]] = {c.id: {} for c in todo}
    remaining = todo
    for check in batch_checks:
        outcomes = check.run(store, remaining, stage_hash)
        rejected = []
        for cand in remaining:
            outcome = outcomes[cand.id]
            if outcome.details:
                found[cand.id][check.name] = outcome.details
            if outcome.reason is not None:
                rejected.append(Decision(cand.id, False, outcome.reason, found[cand.id]))
        write_counted(store, STAGE, stage_hash, result, rejected)
        gone = {d.candidate_id for d in rejected}
        remaining = [c for c in remaining if c.id not in gone]
    if not call_checks:
        write_counted(store, STAGE, stage_hash, result, [Decision(c.id, True, details=found[c.id]) for c in remaining])
        return result

    model = getattr(lm, "model", None)
    streak = FailureStreak(STAGE)  # a server that fails every call stops the stage
    fatal: list[Exception] = []

    def one(cand: Candidate) -> Decision | None:
        if (should_stop is not None and should_stop()) or streak.tripped or fatal:
            return None
        details = found[cand.id]
        score = None
        for check in call_checks:
            try:
                outcome = check.check(cand)
            except LMError as exc:
                # The LM failed (after its retries), not the verdict: undecided, verified next run.
                store.add_failure(purpose=STAGE, task_key=f"verify:{cand.id}", model=model, error=exc)
                streak.failed(exc)
                if (error := fatal_error(exc, model)) is not None:
                    fatal.append(error)
                return None
            streak.succeeded()
            details[check.name] = outcome.details
            score = outcome.score if score is None or outcome.score is None else min(score, outcome.score)
            if outcome.reason is not None:
                return Decision(cand.id, False, outcome.reason, details, score=outcome.score)
        return Decision(cand.id, True, None, details, score=score)

    decide_concurrently(store, STAGE, stage_hash, result, one, remaining, concurrency=concurrency,
                        on_progress=on_progress)
    if fatal:
        raise fatal[0]
    if streak.tripped:
        raise streak.error(model, spec.verify.api_base or spec.generate.api_base)
    return result
