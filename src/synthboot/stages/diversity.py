"""Diversity, measured: distributions against targets, entropy, distinct-n, embedding spread, seed copying.

The seed tutorial's checks are the defaults: fewer than 15% of the hardest difficulty, or fewer
than 5 topics, is a warning; its healthy 30/40/30 difficulty mix is the default target when the
task has an easy/medium/hard field and the spec sets none. Topics are targeted evenly.

`measure` is cheap (counts only) unless `embeddings=True`, which adds the mean nearest-neighbour
cosine distance between kept examples and their similarity to the seeds (synthboot.embeddings).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.store import Candidate
from synthboot.task import Task

DEFAULT_FIELD = "difficulty"
SEED_MIX = {"easy": 0.3, "medium": 0.4, "hard": 0.3}


@dataclass
class DiversityReport:
    total: int
    distributions: dict[str, dict[str, int]] = field(default_factory=dict)
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    # Total variation distance between observed shares and the target (0 = on target, 1 = disjoint).
    divergence: dict[str, float] = field(default_factory=dict)
    # Shannon entropy of each distribution, divided by its maximum (1 = perfectly even).
    entropy: dict[str, float] = field(default_factory=dict)
    distinct: dict[str, float] = field(default_factory=dict)  # 'distinct-1', 'distinct-2' of the compared text
    nn_distance: float | None = None  # mean cosine distance to the nearest other kept example
    seed_similarity: float | None = None  # mean of each example's highest cosine to a seed
    near_seed_rate: float | None = None  # share of examples at or above `near_seed_threshold` to a seed
    warnings: list[str] = field(default_factory=list)

    def share(self, name: str, value: str) -> float:
        return self.distributions.get(name, {}).get(value, 0) / self.total if self.total else 0.0


def diversity_field(spec: Spec, schema: TaskSchema) -> str | None:
    if spec.diversity.field:
        return spec.diversity.field
    return DEFAULT_FIELD if DEFAULT_FIELD in schema.enum_fields() else None


def targets_of(spec: Spec, schema: TaskSchema) -> dict[str, dict[str, float]]:
    """Target shares per distribution: the spec's for its field (or the seed's 30/40/30), topics evenly."""
    out: dict[str, dict[str, float]] = {}
    target_field = diversity_field(spec, schema)
    if target_field and spec.diversity.targets:
        out[target_field] = dict(spec.diversity.targets)
    elif target_field == DEFAULT_FIELD and set(schema.enum_fields()[DEFAULT_FIELD]) == set(SEED_MIX):
        out[DEFAULT_FIELD] = dict(SEED_MIX)
    out["topic"] = {t: 1 / len(spec.topics) for t in spec.topics}
    return out


def entropy(counts: dict[str, int]) -> float:
    """Normalised Shannon entropy: 1.0 when every value is equally common, 0.0 for a single value."""
    total = sum(counts.values())
    if total == 0 or len(counts) < 2:
        return 0.0
    h = -sum(n / total * math.log(n / total) for n in counts.values() if n)
    return max(0.0, h / math.log(len(counts)))  # max: -0.0 for a single value


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts' words (Li et al. 2016): 1.0 = nothing repeats."""
    grams: Counter = Counter()
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def measure(examples: list[Candidate], spec: Spec, *, seeds: list[dict] | None = None,
            embeddings: bool = False) -> DiversityReport:
    from synthboot.stages.dedup import compare_text

    schema = Task.of(spec).schema
    report = DiversityReport(total=len(examples))
    for name, values in schema.enum_fields().items():
        counts = Counter(str((c.fields or {}).get(name)) for c in examples)
        report.distributions[name] = {v: counts.get(v, 0) for v in values}
    topic_counts = Counter(c.topic or "(none)" for c in examples)
    report.distributions["topic"] = {**{t: 0 for t in spec.topics}, **dict(topic_counts.most_common())}
    report.targets = targets_of(spec, schema)
    if not examples:
        report.warnings.append("no examples were kept")
        return report
    for name, dist in report.distributions.items():
        report.entropy[name] = round(entropy(dist), 4)
        if name in report.targets:
            target = report.targets[name]
            keys = set(target) | set(dist)
            report.divergence[name] = round(0.5 * sum(abs(dist.get(k, 0) / report.total - target.get(k, 0.0))
                                                      for k in keys), 4)
    names = Task.of(spec).compared_fields
    texts = [compare_text(c.fields or {}, names) for c in examples]
    report.distinct = {f"distinct-{n}": round(distinct_n(texts, n), 4) for n in (1, 2)}
    if embeddings:
        _embedding_metrics(report, texts, [compare_text(s, names) for s in seeds or []], spec)
    _warn(report, spec, schema)
    return report


def _embedding_metrics(report: DiversityReport, texts: list[str], seed_texts: list[str], spec: Spec) -> None:
    import numpy as np

    from synthboot.embeddings import get_embedder

    embedder = get_embedder(spec.dedup.semantic.embedder)
    vectors = embedder.encode(texts)
    if len(texts) > 1:
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -1.0)
        report.nn_distance = round(float(np.mean(1.0 - sims.max(axis=1))), 4)
    if seed_texts:
        best = (vectors @ embedder.encode(seed_texts).T).max(axis=1)
        report.seed_similarity = round(float(best.mean()), 4)
        report.near_seed_rate = round(float((best >= spec.diversity.near_seed_threshold).mean()), 4)


def _warn(report: DiversityReport, spec: Spec, schema: TaskSchema) -> None:
    target_field = diversity_field(spec, schema)
    min_share = dict(spec.diversity.min_share)
    if target_field == DEFAULT_FIELD and not min_share and "hard" in schema.enum_fields()[DEFAULT_FIELD]:
        min_share = {"hard": 0.15}
    for value, minimum in min_share.items():
        share = report.share(target_field or "", value)
        if share < minimum:
            report.warnings.append(f"less than {minimum:.0%} {value} examples ({share:.0%}): consider generating more")
    topics = len([t for t, n in report.distributions["topic"].items() if n])
    if topics < spec.diversity.min_topics:
        report.warnings.append(f"low topic diversity: {topics} topics, fewer than {spec.diversity.min_topics}")
    for name, tvd in report.divergence.items():
        if tvd > spec.diversity.max_divergence:
            report.warnings.append(f"{name} mix is {tvd:.0%} off its target: a top-up round can aim at the gaps")
    if report.near_seed_rate is not None and report.near_seed_rate > spec.diversity.max_near_seed_rate:
        report.warnings.append(f"{report.near_seed_rate:.0%} of examples closely copy a seed "
                               f"(cosine >= {spec.diversity.near_seed_threshold:g})")


META_KEY = "diversity"
_EMBEDDING_METRICS = ("nn_distance", "seed_similarity", "near_seed_rate")


def _kept_key(examples: list[Candidate]) -> str:
    import hashlib

    return hashlib.sha256(",".join(str(c.id) for c in sorted(examples, key=lambda c: c.id)).encode()).hexdigest()[:16]


def record(store, spec: Spec, examples: list[Candidate]) -> DiversityReport:
    """Measure with embeddings and store the embedding metrics, so `status` shows them without a model."""
    seeds = [c.fields for c in store.candidates(origin="seed") if c.fields]
    wanted = spec.diversity.embeddings if spec.diversity.embeddings is not None else spec.dedup.semantic.enabled
    report = measure(examples, spec, seeds=seeds, embeddings=bool(examples) and wanted)
    store.set_meta(META_KEY, {"kept": _kept_key(examples), **{k: getattr(report, k) for k in _EMBEDDING_METRICS}})
    return report


def with_recorded(report: DiversityReport, store, spec: Spec, examples: list[Candidate]) -> DiversityReport:
    """The cheap report plus the embedding metrics recorded for exactly these examples, if any."""
    stored = store.get_meta(META_KEY) or {}
    if stored.get("kept") == _kept_key(examples):
        for key in _EMBEDDING_METRICS:
            setattr(report, key, stored.get(key))
        report.warnings = []
        _warn(report, spec, Task.of(spec).schema)
    return report
