"""Grounding: an example generated from a chunk must be supported by that chunk.

Offline checks, pure functions that need no LM:
- `support`: the share of the answer's content words (stopwords dropped, light stemming) that
  occur in the context. An answer lifted from another chunk shares few of them.
- `missing_entities`: numbers and capitalised names in the answer that the context never mentions.
- `copied_sentence`: how closely the question repeats one sentence of the context (difflib's ratio
  over words); a question that only restates a sentence is `trivial_copy`.
- `best_similarity`: cosine of the answer to its closest context sentence (embeddings.py).

LM checks, optional: a judge scoring support 1-5 with a rubric, and a closed-book probe (the
question asked without the context; answered right anyway, it did not need the document).
Unanswerable questions are checked the other way round: the answer must be the spec's marker.

`run_grounding` is a filter stage (the contract in synthboot.stages), between validate and dedup (an
ungrounded example must not absorb a grounded near-duplicate): with no `sources` in the spec it
passes every candidate, so later stages see one chain either way.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import dspy

from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.schema import TaskSchema
from synthboot.sources import GroundedFields, grounded_fields, sentences
from synthboot.spec import GroundingSpec, Spec
from synthboot.stages import StageResult, passed, settings_hash
from synthboot.store import Candidate, Decision, Store

STAGE = "grounding"
UPSTREAM = "validate"

STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from into onto over under as is
are was were be been being am do does did done has have had having it its it's this that these those there here
which who whom whose what when where why how not no nor so than too very can could should would may might must
shall will just also only about above after again against all any both each few more most other some such own
same they them their theirs we us our you your he him his she her i me my mine one ones s t""".split())
_WORD = re.compile(r"[^\W_]+(?:[.'][^\W_]+)*", re.UNICODE)
DEFAULT_RUBRIC = ("5: every claim of the answer is stated in the context; 3: the answer's main claim is in the "
                  "context but it adds details that are not; 1: the answer is not supported by the context or "
                  "contradicts it.")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[:-len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased, stemmed words of `text` without stopwords."""
    return [_stem(w) for w in (m.lower() for m in _WORD.findall(text or "")) if w not in STOPWORDS]


def support(answer: str, context: str) -> float:
    """Share of the answer's content words found in the context (1.0 for an answer with none)."""
    words = content_words(answer)
    if not words:
        return 1.0
    vocabulary = set(content_words(context))
    return sum(w in vocabulary for w in words) / len(words)


def missing_entities(answer: str, context: str) -> list[str]:
    """Numbers and capitalised words of the answer (after its first word) that the context lacks."""
    found = _WORD.findall(answer or "")
    candidates = [w for i, w in enumerate(found) if any(ch.isdigit() for ch in w) or (i > 0 and w[:1].isupper())]
    lowered = (context or "").lower()
    vocabulary = {w.lower() for w in _WORD.findall(context or "")}
    return [w for w in dict.fromkeys(candidates) if w.lower() not in vocabulary and w.lower() not in lowered]


def copied_sentence(question: str, context: str) -> tuple[float, str]:
    """The highest word-sequence similarity (0-1) of the question to a sentence of the context, and that sentence."""
    q = [w.lower() for w in _WORD.findall(question or "")]
    best, best_sentence = 0.0, ""
    if not q:
        return best, best_sentence
    for sentence in sentences(context):
        s = [w.lower() for w in _WORD.findall(sentence)]
        if not s:
            continue
        ratio = difflib.SequenceMatcher(None, q, s, autojunk=False).ratio()
        if ratio > best:
            best, best_sentence = ratio, sentence
    return best, best_sentence


def best_similarity(embedder: Any, pairs: list[tuple[str, str]]) -> list[float]:
    """For each (answer, context): the cosine of the answer to its closest context sentence."""
    if not pairs:
        return []
    parts = [sentences(context) or [context] for _, context in pairs]
    flat = [s for p in parts for s in p]
    answers = embedder.encode([a for a, _ in pairs])
    rows = embedder.encode(flat)
    out, start = [], 0
    for i, p in enumerate(parts):
        block = rows[start:start + len(p)]
        start += len(p)
        out.append(float((block @ answers[i]).max()) if len(block) else 0.0)
    return out


def same_answer(answer: str, marker: str) -> bool:
    norm = lambda t: " ".join(_WORD.findall(t.lower()))  # noqa: E731
    return norm(answer) == norm(marker)


@dataclass(frozen=True)
class Verdict:
    kept: bool
    reason: str | None
    details: dict[str, Any]


def offline_verdict(question: str, answer: str, context: str, question_type: str, settings: GroundingSpec,
                    marker: str, similarity: float | None = None) -> Verdict:
    """The offline checks in order; the first that fails is the reason. Pure: no LM, no store."""
    if not content_words(question) or not answer.strip():
        return Verdict(False, "empty", {"question_type": question_type})  # nothing to ground
    copy, sentence = copied_sentence(question, context)
    details: dict[str, Any] = {"question_type": question_type, "copy": round(copy, 3)}
    if copy >= settings.max_copy:
        return Verdict(False, "trivial_copy", {**details, "sentence": sentence[:300]})
    if question_type == "unanswerable":
        ok = same_answer(answer, marker)
        return Verdict(ok, None if ok else "unanswerable_answered", details)
    if same_answer(answer, marker):
        return Verdict(False, "says_unanswerable", details)  # an answerable question left unanswered
    details["support"] = round(support(answer, context), 3)
    if details["support"] < settings.min_support:
        return Verdict(False, "ungrounded", details)
    if missing := missing_entities(answer, context):
        return Verdict(False, "ungrounded_entity", {**details, "missing": missing[:10]})
    if similarity is not None:
        details["similarity"] = round(similarity, 3)
        if settings.min_similarity is not None and similarity < settings.min_similarity:
            return Verdict(False, "low_similarity", details)
    return Verdict(True, None, details)


class JudgeGrounding(dspy.Signature):
    """Judge whether the answer is supported by the context alone, on a 1-5 scale, following the rubric."""

    context: str = dspy.InputField(desc="The only source the answer may use")
    question: str = dspy.InputField()
    answer: str = dspy.InputField()
    rubric: str = dspy.InputField(desc="How to score")
    reasoning: str = dspy.OutputField(desc="Which claims of the answer the context states, in one or two sentences")
    support_score: Literal[1, 2, 3, 4, 5] = dspy.OutputField(desc="1=unsupported, 3=partly, 5=fully supported")


class ClosedBook(dspy.Signature):
    """Answer the question briefly from what you know."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def lm_verdict(cand_fields: dict, names: GroundedFields, question_type: str, settings: GroundingSpec,
               lm: dspy.LM) -> Verdict | None:
    """The LM checks the settings ask for; None when they pass."""
    from dspy.evaluate.metrics import f1_score

    question, answer = str(cand_fields.get(names.question, "")), str(cand_fields.get(names.answer, ""))
    with dspy.context(lm=lm, adapter=JSON_ADAPTER), call_scope(STAGE):
        if settings.judge and question_type != "unanswerable":
            out = dspy.Predict(JudgeGrounding)(context=str(cand_fields.get(names.context, "")), question=question,
                                              answer=answer, rubric=settings.rubric or DEFAULT_RUBRIC,
                                              config={"temperature": 0.0})
            if int(out.support_score) < settings.threshold:
                return Verdict(False, "judge_ungrounded", {"judge_score": int(out.support_score),
                                                           "reasoning": str(out.reasoning)[:500]})
        if settings.closed_book and question_type != "unanswerable":
            guess = str(dspy.Predict(ClosedBook)(question=question, config={"temperature": 0.0}).answer)
            if f1_score(guess, answer) >= 0.6:
                return Verdict(False, "answerable_without_context", {"closed_book_answer": guess[:300]})
    return None


def run_grounding(store: Store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, *, concurrency: int = 1,
                  on_progress: Callable[[int, int], None] | None = None) -> StageResult:
    """Decide the candidates validate kept: grounded in their chunk, or rejected with the check that failed.

    An example whose chunk is no longer in the documents (the document changed since) is `stale_chunk`:
    its context is text the sources do not hold any more. The current chunks are part of the stage's
    hash, so a changed document decides every candidate again (offline checks are cheap; LM verdicts
    are answered from the store).
    """
    g = spec.sources.grounding if spec.sources is not None else None
    enabled = g is not None and g.enabled
    uses_lm = enabled and g is not None and (g.judge or g.closed_book) and lm is not None
    current = {c.hash for c in store.chunks()} if spec.sources is not None else set()
    stage_hash = settings_hash(upstream_hash, STAGE, g.model_dump() if enabled and g else "off",
                               spec.sources.unanswerable_answer if enabled and spec.sources else None,
                               lm.model if uses_lm and lm else None,
                               hashlib.sha256("".join(sorted(current)).encode()).hexdigest()[:16] if current else None)
    result = StageResult(STAGE, stage_hash)
    existing = store.decisions(STAGE)
    todo = [c for c in passed(store, UPSTREAM, upstream_hash)
            if (d := existing.get(c.id)) is None or d.settings_hash != stage_hash]
    links = store.candidate_chunks() if spec.sources is not None else {}
    stale = {c.id for c in todo if c.id in links and not set(links[c.id][1]) <= current}
    if not enabled or not todo:
        decisions = [Decision(c.id, False, "stale_chunk", {"document changed": True}) if c.id in stale
                     else Decision(c.id, True, details={"grounding": "off"}) for c in todo]
        store.write_decisions(STAGE, stage_hash, decisions)
        result.decided, result.kept = len(todo), len(todo) - len(stale)
        if stale:
            result.rejected["stale_chunk"] = len(stale)
        return result
    assert g is not None and spec.sources is not None
    names = grounded_fields(spec, TaskSchema.from_spec(spec))
    marker = spec.sources.unanswerable_answer
    types = {cid: qtype for cid, (qtype, _) in links.items()}
    similarities: list[float | None] = [None] * len(todo)
    if g.min_similarity is not None:
        from synthboot.embeddings import get_embedder

        similarities = list(best_similarity(get_embedder(g.embedder), [
            (str((c.fields or {}).get(names.answer, "")), str((c.fields or {}).get(names.context, ""))) for c in todo]))

    def one(item: tuple[Candidate, float | None]) -> Decision:
        cand, similarity = item
        if cand.id in stale:
            return Decision(cand.id, False, "stale_chunk", {"document changed": True})
        f = cand.fields or {}
        qtype = types.get(cand.id, "factual")
        verdict = offline_verdict(str(f.get(names.question, "")), str(f.get(names.answer, "")),
                                  str(f.get(names.context, "")), qtype, g, marker,
                                  None if qtype == "unanswerable" else similarity)
        if verdict.kept and uses_lm and lm is not None:
            try:
                verdict = lm_verdict(f, names, qtype, g, lm) or verdict
            except Exception as exc:  # noqa: BLE001 - a verdict that does not parse is a reason, not a crash
                store.add_failure(purpose=STAGE, task_key=f"grounding:{cand.id}", model=lm.model, error=exc)
                verdict = Verdict(False, "grounding_judge_error", {"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        return Decision(cand.id, verdict.kept, verdict.reason, verdict.details, score=verdict.details.get("support"))

    with ThreadPoolExecutor(max_workers=max(1, concurrency if uses_lm else 1)) as pool:
        decisions = []
        for decision in pool.map(one, zip(todo, similarities)):
            decisions.append(decision)
            result.decided += 1
            if decision.kept:
                result.kept += 1
            else:
                result.rejected[decision.reason] += 1
            if on_progress:
                on_progress(result.decided, len(todo))
    store.write_decisions(STAGE, stage_hash, decisions)
    return result
