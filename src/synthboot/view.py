"""The dataset as decided: each candidate's outcome, what is kept, and which split holds what.

The one answer to "what is in the dataset" for every reader: `status`, `export`/`load_split`,
optimize's sets, the report, top-up's count and the split stage's pool. Rules, in order:

- A generated candidate is kept when every filter stage kept it under the current settings hash
  (stage hashes chain, synthboot.stages). Every stage is checked, not only the last: a resumed run
  can make an earlier stage change its mind under the same hash (greedy dedup meeting new
  candidates), and the later stage's old decision must not outlive that.
- A human review decision outranks the filters: accepted or edited is kept (with the edited
  fields), rejected is out.
- A split row counts only for a member of the dataset: a kept generated candidate, a seed or an
  imported human example. A frozen row whose candidate a stricter filter or a review rejected since
  stays in the store (it stays frozen), but it is in no split.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from functools import cached_property
from typing import NamedTuple

from synthboot.stages import FILTER_STAGES
from synthboot.store import Candidate, Review, SplitRow, Store

SPLITS = ("train", "dev", "test")
REJECTED_REASON = "review:rejected"


class Outcome(NamedTuple):
    """Where a generated candidate stands: 'kept', 'pending', 'review' or the stage that rejected it."""

    stage: str
    reason: str | None


KEPT = Outcome("kept", None)


@dataclasses.dataclass(frozen=True)
class Member:
    """A split's member: the candidate (reviewers' edits applied) and its split row."""

    candidate: Candidate
    row: SplitRow

    @property
    def fields(self) -> dict:
        return self.candidate.fields or {}


def with_edits(candidate: Candidate, reviews: Mapping[int, Review]) -> Candidate:
    """The candidate with a reviewer's edited fields in place of the generated ones."""
    review = reviews.get(candidate.id)
    if review is not None and review.decision == "edit" and review.fields is not None:
        return dataclasses.replace(candidate, fields=review.fields)
    return candidate


class DatasetView:
    """One consistent reading of a run's store. Build a new one after writing to the store.

    `hashes` are the filter stages' settings hashes to judge against (default: those of the last
    finished run, `stage_hashes` in the store's meta); a stage running now passes its upstream's.
    """

    def __init__(self, store: Store, hashes: Mapping[str, str] | None = None):
        self.store = store
        self.hashes = dict(store.get_meta("stage_hashes", {}) or {}) if hashes is None else dict(hashes)
        self.reviews: dict[int, Review] = store.latest_reviews()
        self.candidates: list[Candidate] = store.candidates()

    @classmethod
    def after(cls, store: Store, last_filter_hash: str) -> DatasetView:
        """The view once the filters have run with the last one's `last_filter_hash` (a stage running
        now, such as split or top-up, passes its upstream's; the hash chains every earlier filter)."""
        return cls(store, {FILTER_STAGES[-1]: last_filter_hash})

    # -- outcomes ----------------------------------------------------------------------------
    @cached_property
    def filter_outcomes(self) -> dict[int, Outcome]:
        """Each generated candidate -> what the automatic filters decided (reviews ignored)."""
        decisions = {stage: self.store.decisions(stage) for stage in FILTER_STAGES}
        out: dict[int, Outcome] = {}
        for cand in self.candidates:
            if cand.origin != "lm":
                continue
            # Every stage is walked, not the last alone: a later stage's decision can outlive an
            # earlier stage's change of mind under the same hash (greedy dedup re-decides when a
            # resumed run adds candidates that sort before a kept one).
            outcome = KEPT
            for stage in FILTER_STAGES:
                d = decisions[stage].get(cand.id)
                # `after` knows only the last stage's hash; the chain makes an earlier stage's
                # latest decision the one that stage holds under its current settings.
                want = self.hashes.get(stage)
                if d is None or (want is not None and d.settings_hash != want):
                    outcome = Outcome("pending", stage)
                    break
                if not d.kept:
                    outcome = Outcome(stage, d.reason)
                    break
            out[cand.id] = outcome
        return out

    @cached_property
    def outcomes(self) -> dict[int, Outcome]:
        """Each generated candidate -> its outcome, a review decision outranking the filters:
        accepted or edited is ('kept', 'review:accepted'/'review:edited'), rejected is
        ('review', 'review:rejected')."""
        out = dict(self.filter_outcomes)
        for cid, review in self.reviews.items():
            if cid in out:
                out[cid] = Outcome("kept", f"review:{review.decision}ed") if review.keeps \
                    else Outcome("review", REJECTED_REASON)
        return out

    def is_member(self, cand: Candidate) -> bool:
        """In the dataset: a kept generated candidate, or a seed or human example not rejected by review."""
        if cand.origin == "lm":
            return self.outcomes.get(cand.id, Outcome("", None)).stage == "kept"
        review = self.reviews.get(cand.id)
        return review is None or review.keeps

    # -- kept and splits ---------------------------------------------------------------------
    def kept(self) -> list[Candidate]:
        """The kept generated candidates in id order, reviewers' edits applied."""
        return [with_edits(c, self.reviews) for c in self.candidates
                if c.origin == "lm" and self.outcomes.get(c.id, Outcome("", None)).stage == "kept"]

    def filter_kept_ids(self) -> set[int]:
        """The ids the filters alone kept (before review)."""
        return {cid for cid, o in self.filter_outcomes.items() if o.stage == "kept"}

    @cached_property
    def split_rows(self) -> dict[int, SplitRow]:
        return self.store.splits()

    @cached_property
    def members(self) -> dict[str, list[Member]]:
        """Split name -> its members in id order, edits applied; rows of non-members left out."""
        out: dict[str, list[Member]] = {name: [] for name in SPLITS}
        for cand in self.candidates:
            row = self.split_rows.get(cand.id)
            if row is None or not self.is_member(cand):
                continue
            cand = with_edits(cand, self.reviews)
            if cand.fields is not None:
                out.setdefault(row.split, []).append(Member(cand, row))
        return out

    @cached_property
    def split_of(self) -> dict[int, str]:
        """Member id -> its split (a candidate in no split is absent)."""
        return {m.candidate.id: name for name, members in self.members.items() for m in members}

    def split_counts(self) -> Counter:
        return Counter({name: len(members) for name, members in self.members.items()})

    def rows(self, split: str) -> list[dict]:
        """A split's examples as field dicts (what export and `load_split` hand out)."""
        return [m.fields for m in self.members[split]]
