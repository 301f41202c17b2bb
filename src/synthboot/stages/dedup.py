"""Deduplicate: layered detectors, within the candidates and against the seeds.

Candidates are taken in a fixed order (seeds and human examples first, then generated ones by id);
each is compared with everything kept so far, layer by layer, and the first layer that finds a
match removes it, recording the example it matched, the layer and the similarity. Because the order
is fixed, a re-run or a run with more candidates keeps the same earlier examples.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.stages import StageResult, passed, settings_hash
from synthboot.store import Candidate, Decision, Store

STAGE = "dedup"


class Layer(Protocol):
    """A duplicate detector over the texts kept so far."""

    name: str

    def match(self, text: str) -> tuple[int, float] | None:
        """The key of a kept text this one duplicates, and the similarity; None if it is new."""

    def add(self, key: int, text: str) -> None:
        """Remember a kept text."""


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace folded: what 'the same text' means for exact dedup."""
    return " ".join(re.findall(r"\w+", text.lower()))


class ExactLayer:
    name = "exact"

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def match(self, text: str) -> tuple[int, float] | None:
        key = self._seen.get(normalize(text))
        return None if key is None else (key, 1.0)

    def add(self, key: int, text: str) -> None:
        self._seen.setdefault(normalize(text), key)


class WordOverlapLayer:
    """The seed tutorial's rule: |A ∩ B| / max(|A|, |B|) over lower-cased word sets.

    An inverted index limits the comparison to texts that share a word; the score is exact.
    """

    name = "word_overlap"

    def __init__(self, threshold: float = 0.85) -> None:
        self.threshold = threshold
        self._sets: dict[int, frozenset[str]] = {}
        self._index: dict[str, list[int]] = defaultdict(list)

    def match(self, text: str) -> tuple[int, float] | None:
        words = frozenset(text.lower().split())
        if not words:
            return None
        shared: dict[int, int] = defaultdict(int)
        for w in words:
            for key in self._index.get(w, ()):
                shared[key] += 1
        best = None
        for key, n in shared.items():
            score = n / max(len(words), len(self._sets[key]))
            if score > self.threshold and (best is None or score > best[1]):
                best = (key, score)
        return best

    def add(self, key: int, text: str) -> None:
        words = frozenset(text.lower().split())
        self._sets[key] = words
        for w in words:
            self._index[w].append(key)


def make_layers(spec: Spec) -> list[Layer]:
    layers: list[Layer] = []
    if spec.dedup.exact:
        layers.append(ExactLayer())
    if spec.dedup.word_overlap.enabled:
        layers.append(WordOverlapLayer(spec.dedup.word_overlap.threshold))
    return layers


@dataclass(frozen=True)
class DedupOutcome:
    kept: list[int]
    removed: dict[int, tuple[str, int, float]]  # key -> (layer, matched key, similarity)


def dedup_texts(items: list[tuple[int, str]], layers: list[Layer], *, reference: list[tuple[int, str]] = ()) -> DedupOutcome:
    """Greedy layered dedup of `items` in order, against `reference` texts (kept unconditionally)."""
    for key, text in reference:
        for layer in layers:
            layer.add(key, text)
    kept, removed = [], {}
    for key, text in items:
        for layer in layers:
            hit = layer.match(text)
            if hit is not None:
                removed[key] = (layer.name, hit[0], round(float(hit[1]), 4))
                break
        else:
            kept.append(key)
            for layer in layers:
                layer.add(key, text)
    return DedupOutcome(kept, removed)


def compare_text(fields: dict, names: list[str]) -> str:
    return "\n".join(str(fields.get(n, "")) for n in names)


def run_dedup(store: Store, spec: Spec, upstream_hash: str) -> StageResult:
    schema = TaskSchema.from_spec(spec)
    names = spec.dedup.fields or list(schema.inputs)
    stage_hash = settings_hash(upstream_hash, STAGE, spec.dedup.model_dump(), names)
    result = StageResult(STAGE, stage_hash)
    candidates = passed(store, "validate", upstream_hash)
    existing = store.decisions(STAGE)
    if all((d := existing.get(c.id)) is not None and d["settings_hash"] == stage_hash for c in candidates):
        return result  # nothing new: the decisions stand
    reference: list[Candidate] = [c for c in store.candidates() if c.origin in ("seed", "human") and c.fields]
    outcome = dedup_texts([(c.id, compare_text(c.fields or {}, names)) for c in candidates], make_layers(spec),
                          reference=[(c.id, compare_text(c.fields, names)) for c in reference])
    decisions = [Decision(cid, True) for cid in outcome.kept]
    for cid, (layer, matched, score) in outcome.removed.items():
        decisions.append(Decision(cid, False, f"duplicate:{layer}", {"layer": layer}, score=score, matched_id=matched))
        result.rejected[f"duplicate:{layer}"] += 1
    store.write_decisions(STAGE, stage_hash, decisions)
    result.decided, result.kept = len(decisions), len(outcome.kept)
    return result
