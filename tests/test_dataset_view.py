"""One answer to "what is in the dataset" (issue 12, bugs 2 and 3): status, export, load_split,
optimize's sets and the report agree on every split, after the test split is frozen and a rule is
tightened; and a review edit cannot leave a train/test overlap. Scripted LM: no model calls."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import synthboot
from synthboot.lm.scripted import scripted_lm
from synthboot.optimize import freeze_test, load_sets
from synthboot.report.data import collect
from synthboot.reviews import add_review
from synthboot.stages import generation_order
from synthboot.status import run_status
from synthboot.store import Store
from tests.conftest import tiny_spec

SPLITS = ("train", "dev", "test")
SPEC = tiny_spec(per_topic=4, per_call=4) + "dedup: {semantic: false}\n"


def generator():
    """Distinct examples (no near-duplicates) whose answers grow longer with their number."""
    counter = itertools.count()

    def reply(prompt: str) -> str:
        n = re.search(r"\[\[ ## count ## \]\]\s*(\d+)", prompt)
        items = []
        for _ in range(int(n.group(1)) if n else 1):
            k = next(counter)
            items.append({"question": f"q{k}a q{k}b q{k}c q{k}d q{k}e in python?",
                          "answer": f"Answer number {k:02d} here: " + "more detail " * k, "difficulty": "easy"})
        return json.dumps({"examples": items})
    return reply


def run(tmp_path: Path, spec_text: str, run_dir: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text)
    synthboot.run(synthboot.load_spec(spec_path), run_dir, lm=scripted_lm([generator()], cycle=True))


def exported_counts(run_dir: Path, tmp_path: Path) -> dict[str, int]:
    paths = synthboot.export(run_dir, "jsonl", to=tmp_path / "export")
    return {p.stem: len(p.read_text().splitlines()) for p in paths if p.stem in SPLITS}


def every_count(run_dir: Path, tmp_path: Path) -> dict[str, dict[str, int]]:
    """Each reader's split counts."""
    status = run_status(run_dir)
    with Store(run_dir) as store:
        sets = load_sets(store)
    report = collect(run_dir)
    field = "difficulty"
    return {
        "status": {s: status.funnel.splits.get(s, 0) for s in SPLITS},
        "export": exported_counts(run_dir, tmp_path),
        "load_split": {s: len(synthboot.load_split(run_dir, s)) for s in SPLITS},
        "optimize": {"train": len(sets["train"]), "dev": len(sets["dev"]),
                     "test": len(sets["test"]) + len(sets["real_test"])},
        "report rows": {s: Counter(r.split for r in report.rows)[s] for s in SPLITS},
        "report distributions": {s: sum(report.split_distributions[s].get(field, {}).values()) for s in SPLITS},
    }


def questions(run_dir: Path, tmp_path: Path) -> dict[str, set[str]]:
    paths = synthboot.export(run_dir, "jsonl", to=tmp_path / "export")
    return {p.stem: {json.loads(line)["question"] for line in p.read_text().splitlines()}
            for p in paths if p.stem in SPLITS}


def split_ids(run_dir: Path, tmp_path: Path) -> dict[str, list[int]]:
    """Each split's candidate ids, as exported."""
    q = questions(run_dir, tmp_path)
    with Store(run_dir) as store:
        by_question = {c.fields["question"]: c.id for c in store.candidates(origin="lm") if c.fields}
    return {s: sorted(by_question[text] for text in q[s]) for s in SPLITS}


def test_every_reader_agrees_after_freezing_test_and_tightening_a_rule(tmp_path):
    run_dir = tmp_path / "run"
    run(tmp_path, SPEC, run_dir)
    test_ids = split_ids(run_dir, tmp_path)["test"]
    with Store(run_dir) as store:
        assert freeze_test(store) == len(test_ids) >= 2  # what optimize does before any optimizer sees data
        answers = sorted(len(c.fields["answer"]) for c in store.candidates(ids=test_ids))
    # Tighten the answer's minimum length so the shortest frozen test example fails it.
    run(tmp_path, SPEC.replace("value: 10", f"value: {answers[0] + 1}"), run_dir)

    counts = every_count(run_dir, tmp_path)
    assert all(c == counts["status"] for c in counts.values()), counts
    status = run_status(run_dir)
    assert status.funnel.rejected["validate"]["answer_too_short"] >= 1
    assert counts["status"]["test"] == len(test_ids) - sum(1 for a in answers if a <= answers[0])
    assert sum(counts["status"].values()) == status.funnel.kept


def edit_train_into_test_copy(run_dir: Path, tmp_path: Path) -> tuple[int, int]:
    """(the edited train row's id, the test row's id)."""
    by_split = split_ids(run_dir, tmp_path)
    with Store(run_dir) as store:
        (test_row,) = store.candidates(ids=by_split["test"][:1])
        add_review(store, by_split["train"][0], "edit", reviewer="ada", fields=dict(test_row.fields))
    return by_split["train"][0], test_row.id


def assert_no_overlap(run_dir: Path, tmp_path: Path) -> None:
    q = questions(run_dir, tmp_path)
    assert not (q["train"] | q["dev"]) & q["test"], q


def test_a_review_edit_into_a_copy_of_a_test_row_leaves_no_overlap(tmp_path):
    run_dir = tmp_path / "run"
    run(tmp_path, SPEC, run_dir)
    edited, test_id = edit_train_into_test_copy(run_dir, tmp_path)
    assert_no_overlap(run_dir, tmp_path)
    run(tmp_path, SPEC, run_dir)  # a re-run keeps it so
    assert_no_overlap(run_dir, tmp_path)
    # ...and dedup compared the edited example: the later of the two copies is an exact duplicate
    # of the earlier (the edit itself still stands: a review outranks the filters).
    with Store(run_dir) as store:
        first, second = sorted(store.candidates(ids=[edited, test_id]), key=generation_order)
        later = store.decisions("dedup")[second.id]
    assert (later.reason, later.matched_id) == ("duplicate:exact", first.id)


def test_a_review_edit_follows_a_frozen_test_row(tmp_path):
    run_dir = tmp_path / "run"
    run(tmp_path, SPEC, run_dir)
    frozen_test = set(split_ids(run_dir, tmp_path)["test"])
    with Store(run_dir) as store:
        freeze_test(store)
    edit_train_into_test_copy(run_dir, tmp_path)
    run(tmp_path, SPEC, run_dir)
    assert_no_overlap(run_dir, tmp_path)
    q = questions(run_dir, tmp_path)
    with Store(run_dir) as store:
        frozen_questions = {c.fields["question"] for c in store.candidates(ids=frozen_test)}
    assert frozen_questions <= q["test"]  # the frozen test rows stayed, and the copy joined them


def test_every_reader_agrees_after_a_review_rejects_a_frozen_test_row(tmp_path):
    run_dir = tmp_path / "run"
    run(tmp_path, SPEC, run_dir)
    test_ids = split_ids(run_dir, tmp_path)["test"]
    with Store(run_dir) as store:
        freeze_test(store)
        add_review(store, test_ids[0], "reject", reviewer="ada")
    counts = every_count(run_dir, tmp_path)
    assert all(c == counts["status"] for c in counts.values()), counts
    assert counts["status"]["test"] == len(test_ids) - 1


def test_a_later_stage_keep_does_not_outlive_an_earlier_stage_reject(tmp_path):
    """A resumed run can make dedup reject, under the same hash, a candidate that the later stages
    kept in an earlier session (greedy dedup meeting new candidates that sort before it): the
    candidate is out, for the full view and for the view a running stage builds with `after`."""
    from synthboot.stages import FILTER_STAGES
    from synthboot.store import Decision
    from synthboot.view import DatasetView

    run_dir = tmp_path / "run"
    run(tmp_path, SPEC, run_dir)
    with Store(run_dir) as store:
        hashes = store.get_meta("stage_hashes")
        view = DatasetView(store)
        target = view.kept()[0].id
        assert target in view.filter_kept_ids()
        store.write_decisions("dedup", hashes["dedup"], [Decision(target, False, "duplicate")])
        assert target not in {c.id for c in DatasetView(store).kept()}
        assert DatasetView(store).filter_outcomes[target].stage == "dedup"
        last = FILTER_STAGES[-1]
        assert target not in {c.id for c in DatasetView.after(store, hashes[last]).kept()}
