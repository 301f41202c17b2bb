"""Split: kept examples -> train/dev/test, seeded and stratified, stored.

Within each stratum the examples are ordered by a seeded hash of their content and cut at the
split fractions. An example's place depends only on the seed, its content and its stratum, not on
the order it was generated in. Test assignments that an optimizer has seen are frozen: a re-split
keeps them and puts new examples in train and dev only.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from synthboot.spec import Spec
from synthboot.stages import StageResult, generation_order, settings_hash
from synthboot.stages.leakage import near_duplicate_groups
from synthboot.store import Candidate, Store
from synthboot.view import SPLITS, DatasetView

STAGE = "split"
__all__ = ["SPLITS", "STAGE", "assign", "run_split", "stratum_of"]


def stratum_of(cand: Candidate, field: str | None) -> str:
    if not field:
        return ""
    if field == "topic" and "topic" not in (cand.fields or {}):
        return cand.topic or ""
    return str((cand.fields or {}).get(field, ""))


def assign(items: list[tuple[int, str, str]], fractions: dict[str, float], seed: int) -> dict[int, str]:
    """`(id, content, stratum)` items -> split name, stratified by cumulative rounding."""
    by_stratum: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for cid, content, stratum in items:
        by_stratum[stratum].append((cid, content))
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    out: dict[int, str] = {}
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum],
                         key=lambda m: hashlib.sha256(f"{seed}:{stratum}:{m[1]}".encode()).hexdigest())
        n, start, cumulative = len(members), 0, 0.0
        for i, name in enumerate(names):
            cumulative += fractions[name]
            end = n if i == len(names) - 1 else round(n * cumulative)
            for cid, _ in members[start:end]:
                out[cid] = name
            start = end
    return out


def run_split(store: Store, spec: Spec, upstream_hash: str) -> StageResult:
    s = spec.split
    # The pool is the dataset view's kept set under the last filter's hash (human review outranks the
    # filters; edited fields are what gets placed and compared), in generation order, the
    # candidates only a review keeps after the rest.
    view = DatasetView.after(store, upstream_hash)
    by_filters = view.filter_kept_ids()
    pool = sorted(view.kept(), key=lambda c: (0, generation_order(c)) if c.id in by_filters else (1, (c.id,)))
    # An edit changes what is compared for leakage: it must re-split (issue 12, bug 3).
    edits = sorted((cid, r.id) for cid, r in view.reviews.items() if r.decision == "edit")
    stage_hash = settings_hash(upstream_hash, STAGE, s.model_dump(), *([edits] if edits else []))
    result = StageResult(STAGE, stage_hash)
    if s.include_seeds:
        pool += [c for c in store.candidates(origin="seed")]
    current = store.splits()
    pool_ids = {c.id for c in pool}
    frozen = {cid: r.split for cid, r in current.items() if r.frozen and cid in pool_ids}
    # Up to date when every row of the pool is placed and each unfrozen placement was made with
    # these settings; frozen rows keep the hash they were placed with (and may lie outside the
    # pool: imported human test rows), so they do not count against it.
    unfrozen = {cid: r for cid, r in current.items() if not r.frozen}
    if set(unfrozen) | set(frozen) == pool_ids and all(r.settings_hash == stage_hash for r in unfrozen.values()):
        result.kept = len(pool)
        return result
    fractions = {"train": s.train, "dev": s.dev, "test": s.test}
    if frozen:
        # Test is frozen once an optimizer has seen the data: newcomers go to train and dev only.
        total = s.train + s.dev
        fractions = {"train": s.train / total, "dev": s.dev / total, "test": 0.0}
    # Near-duplicates share a split (synthboot.stages.leakage): groups are placed, not items, and
    # a group holding a frozen row (a human test example, say) goes where that row is.
    frozen_all = {cid: r.split for cid, r in current.items() if r.frozen}
    frozen_rows = [(c.id, c.fields) for c in store.candidates(ids=frozen_all) if c.fields and c.id not in pool_ids]
    groups = near_duplicate_groups([(c.id, c.fields or {}) for c in pool] + frozen_rows, spec)
    pinned = {groups[cid]: split for cid, split in frozen_all.items() if cid in groups}
    items = [(c.id, json.dumps(c.fields, sort_keys=True), stratum_of(c, s.stratify))
             for c in pool if c.id not in frozen and groups[c.id] == c.id and c.id not in pinned]
    leaders = assign(items, fractions, s.seed)
    assignment = {c.id: pinned.get(groups[c.id]) or leaders[groups[c.id]] for c in pool if c.id not in frozen}
    store.write_splits(stage_hash, assignment, replace_unfrozen=True)
    result.decided = result.kept = len(assignment) + len(frozen)
    return result
