"""Split allocation (issue 12, bug 1): totals that match the fractions, no silently empty split.

Each stratum used to be rounded on its own (`round()`, half to even), so small data lost whole
splits: 1 example went to dev only, 8 at 0.5/0.25/0.25 came out 3/5/0, 10 strata of 2 at 20/60/20
all went to dev. The allocation now works over the whole set (largest remainder) and shares the
totals among the strata; a run warns when a split is still empty or a stratum is too small.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthboot
from synthboot.cli import main
from synthboot.errors import SpecError
from synthboot.lm.scripted import scripted_lm
from synthboot.stages import split as split_stage
from synthboot.status import run_status

QUICK = settings(max_examples=int(os.environ.get("SPLIT_PROPERTY_EXAMPLES", "200")), deadline=None)

# A labelling task whose enum has five values; no fuzzy dedup, so every distinct row is kept.
SPEC = """
name: split-check
task: Label short sentences about places.
fields:
  text: {type: str, description: "A sentence", input: true}
  label: {type: enum, values: [a, b, c, d, e], description: "its label"}
seeds:
  - {text: "The harbour freezes over every January.", label: a}
  - {text: "Snow stays on the northern ridge until June.", label: b}
topics: [places]
generate: {per_topic: PER, per_call: PER, max_tokens: 400, concurrency: 1}
dedup: {minhash: false, semantic: false}
split: {train: 0.5, dev: 0.25, test: 0.25, seed: 42, stratify: label}
# The scripted LM answers the generator only: verify (on by default) stays off, as in conftest.
verify: {enabled: false}
"""
WORDS = "amber birch cedar dune ember fjord grove heath inlet jetty knoll lagoon marsh".split()


def reply_with(labels: list[str]):
    rows = [{"text": f"The {WORDS[i]} near the {WORDS[-1 - i]} is row {i}.", "label": label}
            for i, label in enumerate(labels)]
    return json.dumps({"examples": rows})


def counts(assignment: dict[int, str]) -> dict[str, int]:
    c = Counter(assignment.values())
    return {name: c.get(name, 0) for name in ("train", "dev", "test")}


# -- the four cases of the issue -------------------------------------------------------------------

def test_one_example_is_placed_and_the_empty_splits_are_warned_about():
    assignment = split_stage.assign([(1, "only", "")], {"train": 0.2, "dev": 0.6, "test": 0.2}, seed=42)
    assert counts(assignment) == {"train": 0, "dev": 1, "test": 0}  # nothing lost: the largest split has it
    warnings = split_stage.split_warnings(assignment, {1: ""}, {"train": 0.2, "dev": 0.6, "test": 0.2}, None)
    assert any("train split is empty" in w for w in warnings) and any("test split is empty" in w for w in warnings)


def test_eight_stratified_at_half_quarter_quarter_is_four_two_two():
    # Strata of 2, 2, 2, 1, 1: rounded one by one this was 3/5/0.
    labels = ["a", "a", "b", "b", "c", "c", "d", "e"]
    items = [(i, f"row {i}", label) for i, label in enumerate(labels)]
    assert counts(split_stage.assign(items, {"train": 0.5, "dev": 0.25, "test": 0.25}, seed=42)) == \
        {"train": 4, "dev": 2, "test": 2}


def test_ten_strata_of_two_at_20_60_20_fill_every_split():
    items = [(i, f"row {i}", f"s{i // 2}") for i in range(20)]
    fractions = {"train": 0.2, "dev": 0.6, "test": 0.2}
    assignment = split_stage.assign(items, fractions, seed=42)
    assert counts(assignment) == {"train": 4, "dev": 12, "test": 4}  # was 0/20/0
    warnings = split_stage.split_warnings(assignment, {cid: s for cid, _, s in items}, fractions, "label")
    assert len(warnings) == 1 and "10 of 10 strata of 'label' are too small" in warnings[0]


def test_stratifying_on_free_text_is_a_spec_error_with_its_line(tmp_path, capsys):
    text = SPEC.replace("PER", "2").replace("stratify: label", "stratify: text")
    with pytest.raises(SpecError) as info:
        synthboot.parse_spec(text, source="spec.yaml")
    assert info.value.field == "split.stratify" and info.value.line == text.splitlines().index(
        next(line for line in text.splitlines() if line.startswith("split:"))) + 1
    assert "free-text" in str(info.value) and "label" in str(info.value)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "split.stratify" in err[0]
    assert not (tmp_path / "run").exists()


# -- the same through a run: status, export and the warnings ---------------------------------------

def test_run_of_eight_splits_four_two_two_and_warns_about_small_strata(tmp_path):
    spec = synthboot.parse_spec(SPEC.replace("PER", "8"))
    labels = ["a", "a", "b", "b", "c", "c", "d", "e"]
    result = synthboot.run(spec, tmp_path / "run", lm=scripted_lm([reply_with(labels)]))
    status = run_status(tmp_path / "run")
    assert status.funnel.kept == 8
    assert dict(status.funnel.splits) == {"train": 4, "dev": 2, "test": 2}
    assert [len(synthboot.load_split(tmp_path / "run", s)) for s in ("train", "dev", "test")] == [4, 2, 2]
    # Strata of 1 and 2 cannot reach all three splits: said once, in the stage result and in status.
    assert result.stages[-1].warnings == status.split_warnings
    assert len(status.split_warnings) == 1 and "strata of 'label' are too small" in status.split_warnings[0]


def test_run_with_one_kept_example_warns_in_status(tmp_path, capsys):
    spec = synthboot.parse_spec(SPEC.replace("PER", "1").replace(
        "split: {train: 0.5, dev: 0.25, test: 0.25, seed: 42, stratify: label}",
        "split: {train: 0.2, dev: 0.6, test: 0.2, seed: 42}"))
    synthboot.run(spec, tmp_path / "run", lm=scripted_lm([reply_with(["c"])]))
    assert dict(run_status(tmp_path / "run").funnel.splits) == {"dev": 1}
    assert main(["status", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the train split is empty" in out and "WARNING: the test split is empty" in out


# -- properties ------------------------------------------------------------------------------------

fractions_st = st.lists(st.integers(0, 20), min_size=3, max_size=3).filter(lambda w: sum(w) > 0).map(
    lambda w: {name: x / sum(w) for name, x in zip(("train", "dev", "test"), w)})


@QUICK
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=12), fractions=fractions_st,
       seed=st.integers(0, 3))
def test_allocation_matches_the_fractions_over_the_whole_set(sizes, fractions, seed):
    items = [(i, f"row {i}", f"s{k}") for i, k in enumerate(k for k, n in enumerate(sizes) for _ in range(n))]
    assignment = split_stage.assign(items, fractions, seed)
    n, active = len(items), [s for s in ("train", "dev", "test") if fractions[s] > 0]
    got = counts(assignment)
    assert set(assignment) == {cid for cid, _, _ in items}  # every item placed, once
    assert all(got[s] == 0 for s in got if s not in active)
    if n >= len(active):
        assert all(got[s] >= 1 for s in active)  # never an empty split when there are enough items
    # The totals are those of the whole set; each is its share rounded up or down, give or take the
    # items moved to fill an empty split.
    assert [got[s] for s in active] == split_stage.split_totals(n, [fractions[s] for s in active])
    slack = 1 + sum(1 for s in active if n * fractions[s] < 1)
    assert all(abs(got[s] - n * fractions[s]) < slack for s in active), (got, n, fractions)
    assert split_stage.assign(list(reversed(items)), fractions, seed) == assignment  # order-free


@QUICK
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=10),
       weights=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_allocate_rows_and_columns_add_up_and_cells_stay_near_their_share(sizes, weights):
    n = sum(sizes)
    totals = split_stage.split_totals(n, [float(w) for w in weights]) if n else [0] * len(weights)
    table = split_stage.allocate(sizes, totals)
    assert [sum(row) for row in table] == sizes
    assert [sum(row[j] for row in table) for j in range(len(totals))] == totals
    for size, row in zip(sizes, table):  # every cell is its share rounded down or up
        assert all(abs(cell - (size * t / n if n else 0)) < 1 + 1e-9 for t, cell in zip(totals, row))
