"""Diversity: distributions of every enum field and of topics, against targets, with warnings.

The seed tutorial's checks are the defaults: fewer than 15% of the hardest difficulty, or fewer
than 5 topics, is a warning. A spec sets its own targets and minimum shares.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from synthboot.schema import TaskSchema
from synthboot.spec import Spec
from synthboot.store import Candidate

DEFAULT_FIELD = "difficulty"


@dataclass
class DiversityReport:
    total: int
    distributions: dict[str, dict[str, int]] = field(default_factory=dict)
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def share(self, name: str, value: str) -> float:
        return self.distributions.get(name, {}).get(value, 0) / self.total if self.total else 0.0


def diversity_field(spec: Spec, schema: TaskSchema) -> str | None:
    if spec.diversity.field:
        return spec.diversity.field
    return DEFAULT_FIELD if DEFAULT_FIELD in schema.enum_fields() else None


def measure(examples: list[Candidate], spec: Spec) -> DiversityReport:
    schema = TaskSchema.from_spec(spec)
    report = DiversityReport(total=len(examples))
    for name, values in schema.enum_fields().items():
        counts = Counter(str((c.fields or {}).get(name)) for c in examples)
        report.distributions[name] = {v: counts.get(v, 0) for v in values}
    report.distributions["topic"] = dict(Counter(c.topic or "(none)" for c in examples).most_common())
    target_field = diversity_field(spec, schema)
    if target_field and spec.diversity.targets:
        report.targets[target_field] = dict(spec.diversity.targets)
    if not examples:
        report.warnings.append("no examples were kept")
        return report
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
    return report
