"""Human review decisions: accept, reject or edit a candidate. They outrank the automatic filters.

Decisions are appended to the store's `reviews` table (migration 3) with the reviewer's name and
the time; nothing is overwritten, and the latest decision per candidate is the one in force.
`status.candidate_outcomes` reads them (accepted or edited: kept; rejected: `review:rejected`),
the split stage puts accepted examples in and rejected ones out, and exports write edited fields.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

from synthboot.errors import SynthbootError
from synthboot.store import Candidate, Store, now

ReviewDecision = Literal["accept", "reject", "edit"]
DECISIONS: tuple[str, ...] = ("accept", "reject", "edit")
REJECTED_REASON = "review:rejected"


class ReviewError(SynthbootError):
    """A review decision that cannot be recorded (unknown candidate, invalid edit)."""


@dataclass(frozen=True)
class Review:
    id: int
    candidate_id: int
    decision: str
    fields: dict[str, Any] | None
    reviewer: str
    note: str | None
    created_at: str

    @property
    def keeps(self) -> bool:
        return self.decision in ("accept", "edit")


def _review(row) -> Review:
    return Review(id=row["id"], candidate_id=row["candidate_id"], decision=row["decision"],
                  fields=json.loads(row["fields"]) if row["fields"] else None, reviewer=row["reviewer"],
                  note=row["note"], created_at=row["created_at"])


def latest_reviews(store: Store) -> dict[int, Review]:
    """Candidate id -> the decision in force (the latest one)."""
    rows = store.query("SELECT * FROM reviews WHERE id IN (SELECT MAX(id) FROM reviews GROUP BY candidate_id)")
    return {r["candidate_id"]: _review(r) for r in rows}


def review_history(store: Store, candidate_id: int) -> list[Review]:
    return [_review(r) for r in store.query("SELECT * FROM reviews WHERE candidate_id = ? ORDER BY id",
                                            (candidate_id,))]


def with_edits(candidate: Candidate, reviews: dict[int, Review]) -> Candidate:
    """The candidate with a reviewer's edited fields in place of the generated ones."""
    review = reviews.get(candidate.id)
    if review is not None and review.decision == "edit" and review.fields is not None:
        return dataclasses.replace(candidate, fields=review.fields)
    return candidate


def apply_reviews(store: Store, pool: list[Candidate]) -> list[Candidate]:
    """The filters' pool after review: rejected ones out, accepted and edited ones in, edits applied."""
    reviews = latest_reviews(store)
    if not reviews:
        return pool
    in_pool = {c.id for c in pool}
    added = [c for c in store.candidates(origin="lm", ids=[cid for cid, r in reviews.items() if r.keeps])
             if c.id not in in_pool]
    return [with_edits(c, reviews) for c in [*pool, *added]
            if not (c.id in reviews and reviews[c.id].decision == "reject")]


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
    with store.transaction() as conn:
        cur = conn.execute("INSERT INTO reviews (candidate_id, decision, fields, reviewer, note, created_at)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           (candidate_id, decision, None if stored_fields is None else json.dumps(stored_fields),
                            reviewer.strip(), note, now()))
        review_id = cur.lastrowid
    if refresh:
        refresh_splits(store)
    return _review(store.query("SELECT * FROM reviews WHERE id = ?", (review_id,))[0])


def validate_edit(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    """The edited example checked against the task's schema, as JSON-ready values."""
    from synthboot.schema import TaskSchema
    from synthboot.spec import Spec

    body = store.latest_spec()
    if body is None:
        raise ReviewError(f"{store.run_dir} has no spec yet")
    schema = TaskSchema.from_spec(Spec.model_validate(body))
    try:
        return schema.validate_item(fields).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors())
        raise ReviewError(f"the edited example does not fit the task's schema: {problems}") from None


def refresh_splits(store: Store) -> bool:
    """Re-run the split stage from the stored decisions (no LM) so splits reflect the reviews.

    Does nothing for a run whose filters have not finished once (no stage hashes yet).
    """
    from synthboot.spec import Spec
    from synthboot.stages.split import run_split

    hashes = store.get_meta("stage_hashes") or {}
    body = store.latest_spec()
    if body is None or "judge" not in hashes:
        return False
    run_split(store, Spec.model_validate(body), hashes["judge"])
    return True
