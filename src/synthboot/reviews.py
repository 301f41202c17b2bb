"""Human review decisions: accept, reject or edit a candidate. They outrank the automatic filters.

Decisions are appended to the store's `reviews` table (migration 3) with the reviewer's name and
the time; nothing is overwritten, and the latest decision per candidate is the one in force.
The dataset view (synthboot.view) reads them (accepted or edited: kept; rejected: `review:rejected`),
the split stage puts accepted examples in and rejected ones out, and exports write edited fields.
An edit re-splits: the edited example is grouped with its near-duplicates by the dedup layers, so
it lands in their split (synthboot.stages.leakage).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from synthboot.errors import SynthbootError
from synthboot.stages.split import run_split
from synthboot.store import Review, Store
from synthboot.view import REJECTED_REASON, with_edits
from synthboot.task import Task

ReviewDecision = Literal["accept", "reject", "edit"]
DECISIONS: tuple[str, ...] = ("accept", "reject", "edit")
__all__ = ["DECISIONS", "REJECTED_REASON", "Review", "ReviewError", "add_review", "latest_reviews",
           "refresh_splits", "review_history", "validate_edit", "with_edits"]


class ReviewError(SynthbootError):
    """A review decision that cannot be recorded (unknown candidate, invalid edit)."""


def latest_reviews(store: Store) -> dict[int, Review]:
    """Candidate id -> the decision in force (the latest one)."""
    return store.latest_reviews()


def review_history(store: Store, candidate_id: int) -> list[Review]:
    return store.review_history(candidate_id)


def add_review(store: Store, candidate_id: int, decision: str, *, reviewer: str,
               fields: dict[str, Any] | None = None, note: str | None = None, refresh: bool = True) -> Review:
    """Record a decision on a generated candidate, then re-split so exports see it at once.

    An edit is validated against the task's schema and stored normalised; it keeps the example.
    """
    if decision not in DECISIONS:
        raise ReviewError(f"unknown review decision {decision!r}; choose one of {', '.join(DECISIONS)}")
    if not reviewer or not reviewer.strip():
        raise ReviewError("a review needs the reviewer's name")
    found = store.candidates(origin="lm", ids=[candidate_id])
    if not found:
        raise ReviewError(f"no generated candidate with id {candidate_id}")
    stored_fields = None
    if decision == "edit":
        if not isinstance(fields, dict):
            raise ReviewError("an edit needs the example's fields")
        stored_fields = validate_edit(store, fields)
    review = store.add_review(candidate_id, decision, fields=stored_fields, reviewer=reviewer.strip(), note=note)
    if refresh:
        refresh_splits(store)
    return review


def validate_edit(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    """The edited example checked against the task's schema, as JSON-ready values."""
    spec = store.find_spec()
    if spec is None:
        raise ReviewError(f"{store.run_dir} has no spec yet")
    schema = Task.of(spec).schema
    try:
        return schema.validate_item(fields).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors())
        raise ReviewError(f"the edited example does not fit the task's schema: {problems}") from None


def refresh_splits(store: Store) -> bool:
    """Re-run the split stage from the stored decisions (no LM) so splits reflect the reviews.

    Does nothing for a run whose filters have not finished once (no stage hashes yet).
    """
    hashes = store.get_meta("stage_hashes") or {}
    spec = store.find_spec()
    if spec is None or "judge" not in hashes:
        return False
    run_split(store, spec, hashes["judge"])
    return True
