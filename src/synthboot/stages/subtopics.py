"""LM-proposed subtopics: when a spec lists no `topics`, the generator proposes them.

One LM call proposes `generate.subtopics` short subtopics from the task and the seeds. They are
stored in the run (meta `subtopics`, with the settings they came from), listed by `synthboot
status`, and reused by every later run of the same settings without a call. To edit them, copy
them into the spec's `topics:`: topics listed in the spec always win.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

import annotated_types
import dspy

from synthboot.errors import SynthbootError
from synthboot.lm.adapter import JSON_ADAPTER
from synthboot.lm.calls import call_scope
from synthboot.schema import all_seeds
from synthboot.spec import Spec
from synthboot.store import SUBTOPICS_META, Store

META_KEY = SUBTOPICS_META
PURPOSE = "subtopics"
MAX_LENGTH = 60


class ProposeSubtopics(dspy.Signature):
    """List distinct subtopics to spread the generation of examples for the task below over. The
    seed examples show the domain. Each subtopic is a short phrase (2-6 words) naming one specific
    area of the domain; together they cover it broadly, and no two overlap."""

    task: str = dspy.InputField(desc="What the examples are for")
    seed_examples: str = dspy.InputField(desc="Existing examples of the task (JSON)")
    count: int = dspy.InputField(desc="How many subtopics to list")
    subtopics: list[Annotated[str, annotated_types.MinLen(2), annotated_types.MaxLen(MAX_LENGTH)]] = \
        dspy.OutputField(desc="A JSON list of exactly `count` distinct subtopics")


def proposal_key(spec: Spec, model: str) -> str:
    """What a proposal depends on: change the task, seeds, count or LM and it is proposed again."""
    blob = json.dumps([spec.task, all_seeds(spec), spec.generate.subtopics, model], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stored_subtopics(store: Store) -> list[str] | None:
    """The subtopics the LM proposed for this run, if it did."""
    return store.subtopics()


def clean(proposed: list, limit: int) -> list[str]:
    """Unique (case- and space-insensitive), wordy, at most `limit`, in the LM's order."""
    out: list[str] = []
    seen: set[str] = set()
    for item in proposed:
        text = re.sub(r"\s+", " ", str(item)).strip(" -*.\t")
        norm = text.lower()
        # Two word characters at least: a small model's JSON debris ("}, { ,") is no topic.
        if len(re.findall(r"\w", norm)) >= 2 and norm not in seen:
            seen.add(norm)
            out.append(text)
    return out[:limit]


def resolve_topics(store: Store, spec: Spec, lm: dspy.LM) -> list[str]:
    """The topics generation spreads over: the spec's, else the stored proposal, else a new one."""
    if spec.topics:
        return list(spec.topics)
    key = proposal_key(spec, lm.model)
    entry = store.get_meta(META_KEY)
    if entry and entry.get("key") == key:
        return list(entry["topics"])
    seeds = json.dumps(all_seeds(spec), indent=1, ensure_ascii=False)
    # A fixed seed: the same settings give the same request, which the store answers on a re-run.
    seed = int(key[:8], 16)
    with dspy.context(lm=lm, adapter=JSON_ADAPTER), call_scope(PURPOSE) as scope:
        try:
            out = dspy.Predict(ProposeSubtopics)(task=spec.task, seed_examples=seeds, count=spec.generate.subtopics,
                                                 config={"seed": seed, "temperature": spec.generate.temperature,
                                                         "max_tokens": spec.generate.max_tokens})
            proposed = list(out.subtopics or [])
        except dspy.utils.exceptions.AdapterParseError:
            proposed = []
    topics = clean(proposed, spec.generate.subtopics)
    if not topics:
        raise SynthbootError(f"the LM ({lm.model}) proposed no usable subtopics; list `topics:` in the spec")
    store.set_meta(META_KEY, {"key": key, "topics": topics, "model": lm.model,
                              "call_id": scope.call_ids[-1] if scope.call_ids else None})
    return topics


def with_topics(spec: Spec, topics: list[str]) -> Spec:
    return spec if topics == spec.topics else spec.model_copy(update={"topics": list(topics)})
