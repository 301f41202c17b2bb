"""The offline label check on the real packaged MiniLM: a k-NN vote over trusted rows, and label conflicts."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import synthboot
from synthboot.embeddings import get_embedder
from synthboot.label_vote import Labelled, classifier_scores, label_texts, vote
from synthboot.lm.scripted import scripted_lm
from synthboot.spec import LabelVoteSpec
from synthboot.store import Store

TRUSTED = [
    ("How much money is in my checking account?", "balance"),
    ("What is the balance on my savings?", "balance"),
    ("Show me my account balance please", "balance"),
    ("Send 50 dollars to my brother", "transfer"),
    ("Transfer 300 euros to my landlord", "transfer"),
    ("Move money from checking to savings", "transfer"),
    ("I lost my debit card", "lost_card"),
    ("My credit card was stolen", "lost_card"),
    ("I can't find my bank card anywhere", "lost_card"),
]
CANDIDATES = [  # text, label, should pass
    ("How much do I have in my account right now?", "balance", True),
    ("Please send 20 dollars to my sister", "transfer", True),
    ("Someone stole my card yesterday", "lost_card", True),
    ("What's the balance of my checking account?", "transfer", False),
    ("Wire 100 dollars to my mom's account", "lost_card", False),
    ("I think I lost my credit card", "balance", False),
]


@pytest.mark.parametrize("method", ["classifier", "neighbours"])
def test_vote_rejects_swapped_labels_and_keeps_right_ones(method):
    embedder = get_embedder("local")
    trusted = [Labelled(i, t, label) for i, (t, label) in enumerate(TRUSTED)]
    cands = [Labelled(100 + i, t, label) for i, (t, label, _) in enumerate(CANDIDATES)]
    findings = vote(cands, trusted, embedder.encode([c.text for c in cands]),
                    embedder.encode([t.text for t in trusted]), LabelVoteSpec(method=method))
    for cand, (_, _, ok) in zip(cands, CANDIDATES):
        assert (cand.id not in findings) is ok, (cand, findings.get(cand.id))
    found = findings[103]
    assert found.reason == "label_vote" and found.details["vote"] == "balance" and found.details["label"] == "transfer"
    assert found.details["method"] == method


def test_label_names_vote_with_two_seeds_a_label():
    """Two vague seeds a label: the label's own name tells a declined card from a lost one."""
    embedder = get_embedder("local")
    seeds = [("my card isn't working at the shop", "card_declined"), ("why won't the machine take my card", "card_declined"),
             ("i can't find my card", "report_lost_card"), ("where did my card go", "report_lost_card"),
             ("what's in my account", "balance"), ("how much have i got", "balance")]
    cands = [Labelled(100, "my card was rejected", "report_lost_card"),  # wrong
             Labelled(101, "balance", "card_declined"),  # wrong; the text equals a label's name
             Labelled(102, "my payment was declined", "card_declined"),  # right
             Labelled(103, "i lost my credit card", "report_lost_card")]  # right
    trusted = [Labelled(i, t, label) for i, (t, label) in enumerate(seeds)]
    named_texts = label_texts({"card_declined": None, "report_lost_card": None, "balance": None, "pin": "change a pin"},
                              {label for _, label in seeds})
    assert ("report_lost_card", "report lost card") in named_texts and all(lab != "pin" for lab, _ in named_texts)
    named = [Labelled(-1, text, label) for label, text in named_texts]
    cand_rows, trusted_rows = embedder.encode([c.text for c in cands]), embedder.encode([t.text for t in trusted])
    without = vote(cands, trusted, cand_rows, trusted_rows, LabelVoteSpec())
    with_names = vote(cands, trusted, cand_rows, trusted_rows, LabelVoteSpec(), named,
                      embedder.encode([n.text for n in named]))
    assert 100 not in without and 101 not in without  # the seeds alone miss both swaps
    assert with_names[100].details["vote"] == "card_declined"
    assert with_names[101].reason == "label_vote"  # a label's name is no example: no label conflict
    assert 102 not in with_names and 103 not in with_names
    assert label_texts({"bill_due": "when a bill is due"}, {"bill_due"}) == [
        ("bill_due", "bill due"), ("bill_due", "when a bill is due")]


# Exact cases on hand-made unit vectors: three labels, two trusted rows each, around three axes.
AXES = np.eye(4, dtype=np.float32)


def unit(*weights: float) -> np.ndarray:
    v = np.array(weights, dtype=np.float32)
    return v / np.linalg.norm(v)


def cluster_rows() -> tuple[list[Labelled], np.ndarray]:
    rows = [unit(1, 0.1, 0, 0), unit(1, 0, 0.1, 0), unit(0.1, 1, 0, 0), unit(0, 1, 0.1, 0),
            unit(0, 0.1, 1, 0), unit(0.1, 0, 1, 0)]
    labels = ["a", "a", "b", "b", "c", "c"]
    return [Labelled(i, f"t{i}", lab) for i, lab in enumerate(labels)], np.vstack(rows)


def test_classifier_scores_are_log_probabilities_that_favour_the_near_label():
    trusted, rows = cluster_rows()
    [scores] = classifier_scores(unit(1, 0.2, 0.1, 0)[None, :], rows, np.array([t.label for t in trusted]))
    assert set(scores) == {"a", "b", "c"}
    assert abs(sum(np.exp(list(scores.values()))) - 1) < 1e-6
    assert scores["a"] > scores["b"] > scores["c"]


def test_log_ratio_decides_how_sure_the_classifier_must_be():
    trusted, rows = cluster_rows()
    # Near label a; labelled b: a clear swap. Between a and b, labelled b: a close call.
    cands = [Labelled(10, "x", "b"), Labelled(11, "y", "b")]
    cand_rows = np.vstack([unit(1, 0.05, 0, 0), unit(1, 0.9, 0, 0)])
    strict = vote(cands, trusted, cand_rows, rows, LabelVoteSpec(near_duplicate=0.9999))
    assert strict[10].reason == "label_vote" and strict[10].details["vote"] == "a"
    ratio = strict[10].details["margin"]  # log P(a) - log P(b)
    assert ratio >= 0.3
    close = vote([cands[1]], trusted, cand_rows[1:], rows, LabelVoteSpec(near_duplicate=0.9999, log_ratio=ratio))
    assert 11 not in close  # the close call is smaller than the clear swap's ratio
    lenient = vote(cands, trusted, cand_rows, rows, LabelVoteSpec(near_duplicate=0.9999, log_ratio=ratio + 0.01))
    assert 10 not in lenient


def test_classifier_does_not_judge_inputs_unlike_every_trusted_row_or_unseen_labels():
    trusted, rows = cluster_rows()
    far = Labelled(20, "far", "b")  # along the fourth axis: no trusted row is near it
    unseen = Labelled(21, "u", "d")  # a label no trusted row carries: nothing to compare with
    findings = vote([far, unseen], trusted, np.vstack([unit(0.05, 0, 0, 1), unit(1, 0, 0, 0.2)]), rows,
                    LabelVoteSpec(near_duplicate=0.9999))
    assert findings == {}
    one_label = [t for t in trusted if t.label == "a"]
    assert vote([Labelled(22, "z", "b")], one_label, unit(1, 0, 0, 0)[None, :], rows[:2],
                LabelVoteSpec(near_duplicate=0.9999)) == {}


def test_near_duplicates_with_different_labels_conflict():
    embedder = get_embedder("local")
    trusted = [Labelled(1, "I lost my debit card", "lost_card")]
    cands = [Labelled(10, "i lost my debit card!", "balance"), Labelled(11, "Pay my electricity bill", "transfer"),
             Labelled(12, "Pay my electricity bill.", "balance")]
    findings = vote(cands, trusted, embedder.encode([c.text for c in cands]), embedder.encode([trusted[0].text]),
                    LabelVoteSpec())
    assert findings[10].reason == "label_conflict" and findings[10].details["matched_id"] == 1
    # Two candidates with the same text and different labels: neither label can be trusted.
    assert findings[11].reason == findings[12].reason == "label_conflict"


SPEC = """
name: intents
task: Banking chatbot user messages labelled with their intent.
fields:
  text: {type: str, input: true}
  intent: {type: enum, values: [balance, transfer, lost_card]}
seeds: SEEDS
topics: [banking]
generate: {per_topic: 6, per_call: 6}
dedup: {semantic: false, minhash: false}
verify: {lm_check: false}
"""


def test_the_stage_votes_offline_without_an_lm_call(tmp_path):
    spec_path = tmp_path / "intents.yaml"
    spec_path.write_text(SPEC.replace("SEEDS", json.dumps([{"text": t, "intent": label} for t, label in TRUSTED])))
    rows = [{"text": t, "intent": label} for t, label, _ in CANDIDATES]
    lm = scripted_lm([json.dumps({"examples": rows})], cycle=True)
    result = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=lm)
    [verify] = [s for s in result.stages if s.stage == "verify"]
    assert result.lm_calls_made == 1  # generation only: the vote needs no LM
    assert verify.kept == 3 and verify.rejected == Counter({"label_vote:intent": 3})
    with Store(tmp_path / "run") as store:
        by_id = {c.id: c.fields for c in store.candidates(origin="lm")}
        for cid, d in store.decisions("verify").items():
            details = d.details or {}
            if not d.kept:
                vote_ = details["label_vote"]
                assert vote_["label"] == by_id[cid]["intent"] and vote_["vote"] != vote_["label"]
                assert vote_["neighbours"]
    again = synthboot.run(synthboot.load_spec(spec_path), tmp_path / "run", lm=scripted_lm([]))
    assert [s.decided for s in again.stages if s.stage == "verify"] == [0]  # idempotent: nothing to decide
