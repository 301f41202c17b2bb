"""The offline label check on the real packaged MiniLM: a k-NN vote over trusted rows, and label conflicts."""

from __future__ import annotations

import json
from collections import Counter

import synthboot
from synthboot.embeddings import get_embedder
from synthboot.label_vote import Labelled, vote
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


def test_vote_rejects_swapped_labels_and_keeps_right_ones():
    embedder = get_embedder("local")
    trusted = [Labelled(i, t, label) for i, (t, label) in enumerate(TRUSTED)]
    cands = [Labelled(100 + i, t, label) for i, (t, label, _) in enumerate(CANDIDATES)]
    findings = vote(cands, trusted, embedder.encode([c.text for c in cands]),
                    embedder.encode([t.text for t in trusted]), LabelVoteSpec())
    for cand, (_, _, ok) in zip(cands, CANDIDATES):
        assert (cand.id not in findings) is ok, (cand, findings.get(cand.id))
    found = findings[103]
    assert found.reason == "label_vote" and found.details["vote"] == "balance" and found.details["label"] == "transfer"


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
