"""Split: kept examples -> train/dev/test, seeded and stratified, stored.

The split sizes are set over the whole set (largest remainder, never an empty split when there
are at least as many examples as splits) and shared among the strata in proportion to their sizes;
within each stratum the examples are ordered by a seeded hash of their content and cut at its
counts. An example's place depends only on the seed, the data and its stratum, not on the order it
was generated in. Test assignments that an optimizer has seen are frozen: a re-split keeps them and
puts new examples in train and dev only. Empty splits and strata too small to reach every split
are reported as warnings (in `status` and the report).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict

from synthboot.spec import Spec
from synthboot.stages import StageResult, generation_order, settings_hash
from synthboot.stages.leakage import merge_by_document, near_duplicate_groups
from synthboot.store import Candidate, Store
from synthboot.view import SPLITS, DatasetView

STAGE = "split"
WARNINGS_META = "split_warnings"
__all__ = ["SPLITS", "STAGE", "WARNINGS_META", "allocate", "assign", "run_split", "split_totals", "split_warnings",
           "stratum_of"]


def stratum_of(cand: Candidate, field: str | None) -> str:
    if not field:
        return ""
    if field == "topic" and "topic" not in (cand.fields or {}):
        return cand.topic or ""
    return str((cand.fields or {}).get(field, ""))


def assign(items: list[tuple[int, str, str]], fractions: dict[str, float], seed: int) -> dict[int, str]:
    """`(id, content, stratum)` items -> split name, stratified, with totals that match the fractions.

    The split totals come from the whole set (largest remainder), so rounding each stratum on its own
    can no longer leave a split empty; every split with a fraction above zero gets at least one item
    when there are enough items. Those totals are then shared among the strata in proportion to
    their sizes (`allocate`), and each stratum is cut, in its seeded-hash order, at its counts.
    """
    by_stratum: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for cid, content, stratum in items:
        by_stratum[stratum].append((cid, content))
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    if not names or not items:
        return {}
    strata = sorted(by_stratum)
    totals = split_totals(len(items), [fractions[n] for n in names])
    counts = allocate([len(by_stratum[s]) for s in strata], totals,
                      tie_break=[_digest(f"{seed}:stratum:{s}") for s in strata])
    out: dict[int, str] = {}
    for stratum, row in zip(strata, counts):
        members = sorted(by_stratum[stratum], key=lambda m: _digest(f"{seed}:{stratum}:{m[1]}"))
        start = 0
        for name, n in zip(names, row):
            for cid, _ in members[start:start + n]:
                out[cid] = name
            start += n
    return out


def split_totals(n: int, fractions: list[float]) -> list[int]:
    """`n` items shared by the fractions: largest remainder, then at least one each when n allows."""
    total = sum(fractions)
    ideal = [n * f / total for f in fractions]
    counts = [int(x) for x in ideal]
    by_remainder = sorted(range(len(ideal)), key=lambda i: (-(ideal[i] - counts[i]), -fractions[i], i))
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    if n >= len(counts):
        # An empty split is worse than a slightly off fraction: take one from the largest.
        for i, c in enumerate(counts):
            if c == 0:
                counts[max(range(len(counts)), key=lambda j: (counts[j], -j))] -= 1
                counts[i] = 1
    return counts


def allocate(sizes: list[int], totals: list[int], tie_break: list[str] | None = None) -> list[list[int]]:
    """A table of counts (stratum x split) whose rows sum to `sizes` and columns to `totals`.

    Every cell is its proportional share `size * total / n` rounded down or up. Such a rounding
    always exists (the shares' rows and columns add up to whole numbers); the units to round up go
    first to the largest remainders (ties broken by `tie_break`, a seeded order of the strata), and
    where that greedy pass gets stuck, an augmenting path moves units along to make room.
    """
    n = sum(sizes)
    if n != sum(totals):
        raise ValueError(f"the split totals {totals} do not add up to the {n} items")
    order = tie_break or [str(i) for i in range(len(sizes))]
    ideal = [[size * t / n if n else 0.0 for t in totals] for size in sizes]
    table = [[math.floor(x) for x in row] for row in ideal]
    row_left = [size - sum(row) for size, row in zip(sizes, table)]
    col_left = [t - sum(row[j] for row in table) for j, t in enumerate(totals)]
    fractional = sorted(((i, j) for i, row in enumerate(ideal) for j, x in enumerate(row) if x > table[i][j]),
                        key=lambda ij: (table[ij[0]][ij[1]] - ideal[ij[0]][ij[1]], order[ij[0]], ij[1]))
    up: set[tuple[int, int]] = set()
    for i, j in fractional:
        if row_left[i] > 0 and col_left[j] > 0:
            up.add((i, j))
            row_left[i] -= 1
            col_left[j] -= 1
    for start in range(len(sizes)):
        while row_left[start] > 0:
            path = _augmenting_path(start, fractional, up, col_left)
            if path is None:
                raise AssertionError("no rounding found: the shares' sums are not whole numbers")
            for k, cell in enumerate(path):
                (up.add if k % 2 == 0 else up.discard)(cell)
            row_left[start] -= 1
            col_left[path[-1][1]] -= 1
    for i, j in up:
        table[i][j] += 1
    return table


def _augmenting_path(start: int, fractional: list[tuple[int, int]], up: set[tuple[int, int]],
                     col_left: list[int]) -> list[tuple[int, int]] | None:
    """Cells to round up, down, up, ... from stratum `start` to a split still short (breadth first)."""
    by_row: dict[int, list[int]] = defaultdict(list)
    by_col: dict[int, list[int]] = defaultdict(list)
    for i, j in fractional:
        by_row[i].append(j)
        if (i, j) in up:
            by_col[j].append(i)
    came: dict[int, tuple[int, int]] = {}  # split -> the up-cell reaching it
    via: dict[int, tuple[int, int] | None] = {start: None}  # stratum -> the down-cell reaching it
    frontier = [start]
    while frontier:
        following = []
        for i in frontier:
            for j in by_row[i]:
                if (i, j) in up or j in came:
                    continue
                came[j] = (i, j)
                if col_left[j] > 0:
                    path, cell = [], (i, j)
                    while True:
                        path.append(cell)
                        down = via[cell[0]]
                        if down is None:
                            return path[::-1]
                        path.append(down)
                        cell = came[down[1]]
                for k in by_col[j]:
                    if k not in via:
                        via[k] = (k, j)
                        following.append(k)
        frontier = following
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_warnings(assignment: dict[int, str], strata: dict[int, str], fractions: dict[str, float],
                   stratify: str | None) -> list[str]:
    """What a user should know about a split: an empty split, strata too small to reach every split."""
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    counts = Counter(assignment.values())
    warnings = [f"the {name} split is empty ({len(assignment)} examples in all)"
                for name in names if not counts.get(name)]
    if stratify:
        seen: dict[str, set[str]] = defaultdict(set)
        sizes: Counter = Counter()
        for cid, split in assignment.items():
            if cid in strata:  # imported human rows have no stratum of their own
                seen[strata[cid]].add(split)
                sizes[strata[cid]] += 1
        short = sorted(s for s in seen if len(seen[s]) < len(names))
        if short:
            shown = ", ".join(f"{s or '(none)'} ({sizes[s]}: not in {'/'.join(n for n in names if n not in seen[s])})"
                              for s in short[:5])
            more = f" and {len(short) - 5} more" if len(short) > 5 else ""
            warnings.append(f"{len(short)} of {len(seen)} strata of {stratify!r} are too small to appear in every "
                            f"split: {shown}{more}")
    return warnings


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
        result.warnings = store.get_meta(WARNINGS_META, []) or []
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
    if spec.sources is not None:
        groups = merge_by_document(groups, store.candidate_documents())
    pinned = {groups[cid]: split for cid, split in frozen_all.items() if cid in groups}
    items = [(c.id, json.dumps(c.fields, sort_keys=True), stratum_of(c, s.stratify))
             for c in pool if c.id not in frozen and groups[c.id] == c.id and c.id not in pinned]
    leaders = assign(items, fractions, s.seed)
    assignment = {c.id: pinned.get(groups[c.id]) or leaders[groups[c.id]] for c in pool if c.id not in frozen}
    store.write_splits(stage_hash, assignment, replace_unfrozen=True)
    result.decided = result.kept = len(assignment) + len(frozen)
    result.warnings = split_warnings({**frozen_all, **assignment}, {c.id: stratum_of(c, s.stratify) for c in pool},
                                     {"train": s.train, "dev": s.dev, "test": s.test}, s.stratify)
    store.set_meta(WARNINGS_META, result.warnings)  # shown by `status` and the report
    return result
