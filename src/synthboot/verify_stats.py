"""What verify found, per checked output field: how often the verifier agreed with the generator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from synthboot.store import Store


@dataclass(frozen=True)
class FieldAgreement:
    field: str
    compared: int  # candidates whose field the verifier predicted
    agreed: int
    match: str     # how values were compared (synthboot.agreement)

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def field_agreement(store: Store) -> list[FieldAgreement]:
    """Agreement per field over the verify decisions in force (those of the run's last settings)."""
    current = (store.get_meta("stage_hashes", {}) or {}).get("verify")
    compared: Counter = Counter()
    agreed: Counter = Counter()
    matches: dict[str, str] = {}
    for d in store.decisions("verify").values():
        if current is not None and d.settings_hash != current or not d.details:
            continue
        fields = (d.details.get("lm") or {}).get("fields") or {}
        for name, found in fields.items():
            if not isinstance(found, dict) or "agree" not in found:
                continue
            compared[name] += 1
            agreed[name] += bool(found["agree"])
            matches.setdefault(name, found.get("match", ""))
    return [FieldAgreement(name, compared[name], agreed[name], matches[name]) for name in compared]
