"""Leakage across splits: near-duplicates always share a split, so no test item has a twin in train or dev.

Dedup already removes generated near-duplicates of each other and of the seeds and human examples.
The split stage still groups what it places, with the same layers (or exact matching when every
layer is off), so the guarantee holds whatever the dedup settings: a group goes to one split, and a
group holding a frozen row (an imported human test example, a test item an optimizer has seen)
goes to that row's split. `find_leaks` checks a run's stored splits.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthboot.spec import Spec
from synthboot.stages.dedup import ExactLayer, Layer, compare_text, make_layers
from synthboot.store import Store
from synthboot.view import DatasetView
from synthboot.task import Task


def leak_layers(spec: Spec) -> list[Layer]:
    return make_layers(spec) or [ExactLayer()]


def near_duplicate_groups(items: list[tuple[int, dict]], spec: Spec) -> dict[int, int]:
    """Each item's id -> the id of the first item of its group (connected by any layer's link)."""
    names = Task.of(spec).compared_fields
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(items) > 1:
        for layer in leak_layers(spec):
            texts = [compare_text(fields, layer.fields or names) for _, fields in items]
            for i, neighbours in enumerate(layer.candidates(texts)):
                for j, _ in neighbours:
                    a, b = root(i), root(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    return {items[i][0]: items[root(i)][0] for i in range(len(items))}


def merge_by_document(groups: dict[int, int], documents: dict[int, str]) -> dict[int, int]:
    """Groups joined so that items generated from one source document share a group (and so a split).

    Examples from the same document share facts, so one in train and one in test would leak the
    test answer: with `sources`, the unit of a split is the document. Leaders stay the smallest id
    of each group, as `near_duplicate_groups` gives them.
    """
    parent: dict[int, int] = {}

    def root(g: int) -> int:
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    first_of_doc: dict[str, int] = {}
    for cid, group in groups.items():
        if (doc := documents.get(cid)) is None:
            continue
        a, b = root(group), root(first_of_doc.setdefault(doc, group))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {cid: root(group) for cid, group in groups.items()}


@dataclass(frozen=True)
class Leak:
    item: int  # a train or dev item
    test_item: int  # the test item it nearly duplicates
    split: str


def find_leaks(store: Store, spec: Spec) -> list[Leak]:
    """Train/dev items that are near-duplicates (by the spec's dedup layers) of a test item."""
    view = DatasetView(store)
    splits = view.split_of
    rows = [(m.candidate.id, m.fields) for members in view.members.values() for m in members if m.fields]
    groups = near_duplicate_groups(rows, spec)
    if spec.sources is not None:
        groups = merge_by_document(groups, store.candidate_documents())
    test_groups: dict[int, int] = {}
    for cid, group in groups.items():
        if splits[cid] == "test":
            test_groups.setdefault(group, cid)
    return [Leak(cid, test_groups[group], splits[cid]) for cid, group in groups.items()
            if splits[cid] != "test" and group in test_groups]
