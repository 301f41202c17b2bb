"""Grounding checks: answers supported by their chunk pass, answers planted from another chunk do not."""

from __future__ import annotations

from pathlib import Path

from synthboot.sources import chunk_sections, read_sections, sentences
from synthboot.spec import GroundingSpec, SourcesSpec
from synthboot.stages.grounding import copied_sentence, missing_entities, offline_verdict, support

DOCS = Path(__file__).parent / "data" / "docs"
MARKER = "The context does not say."
CONTEXT = ("Korven Point Lighthouse was built in 1887 by the engineer Mathilde Arnesen. "
           "Its lantern shows two white flashes every ten seconds.")


def corpus_chunks():
    settings = SourcesSpec(paths=["x"], max_tokens=60, overlap=10, min_tokens=10)
    return [c for p in sorted(DOCS.iterdir()) for c in chunk_sections(p.name, read_sections(p), settings)]


def test_support_counts_content_words_found_in_the_context():
    assert support("It was built in 1887 by Mathilde Arnesen.", CONTEXT) == 1.0
    assert support("Two white flashes.", CONTEXT) == 1.0
    assert support("It is painted red and has ninety steps.", CONTEXT) < 0.3


def test_missing_entities_names_numbers_and_names_the_context_lacks():
    assert missing_entities("Built in 1887 by Mathilde Arnesen.", CONTEXT) == []
    assert missing_entities("Built in 1902 by Gustave Eiffel.", CONTEXT) == ["1902", "Gustave", "Eiffel"]


def test_a_question_that_restates_a_sentence_is_trivial():
    ratio, sentence = copied_sentence("Its lantern shows two white flashes every ten seconds?", CONTEXT)
    assert ratio > 0.9 and sentence.startswith("Its lantern")
    assert copied_sentence("How often does the light flash?", CONTEXT)[0] < 0.5
    verdict = offline_verdict("Korven Point Lighthouse was built in 1887 by the engineer Mathilde Arnesen?",
                              "In 1887.", CONTEXT, "factual", GroundingSpec(), MARKER)
    assert not verdict.kept and verdict.reason == "trivial_copy"


def test_verdicts_by_question_type():
    g = GroundingSpec(min_similarity=None)
    assert offline_verdict("Who built the lighthouse?", "Mathilde Arnesen, in 1887.", CONTEXT, "factual", g,
                           MARKER).kept
    assert offline_verdict("What colour is the tower?", MARKER, CONTEXT, "unanswerable", g, MARKER).kept
    answered = offline_verdict("What colour is the tower?", "Red.", CONTEXT, "unanswerable", g, MARKER)
    assert answered.reason == "unanswerable_answered"
    unanswered = offline_verdict("Who built the lighthouse?", MARKER, CONTEXT, "factual", g, MARKER)
    assert unanswered.reason == "says_unanswerable"
    assert offline_verdict("", "Mathilde Arnesen.", CONTEXT, "factual", g, MARKER).reason == "empty"
    assert offline_verdict("Who built it?", " ", CONTEXT, "factual", g, MARKER).reason == "empty"
    invented = offline_verdict("Who built it?", "Gustave Eiffel built it.", CONTEXT, "factual", g, MARKER)
    assert invented.reason in ("ungrounded", "ungrounded_entity")
    low = offline_verdict("Who built it?", "Mathilde Arnesen.", CONTEXT, "factual", GroundingSpec(), MARKER,
                          similarity=0.1)
    assert low.reason == "low_similarity"


def test_planted_ungrounded_answers_are_rejected():
    """Target (issue 13): answers taken from another chunk rejected at least 90% of the time.

    Every chunk of the test corpus is paired with facts (sentences) of every other chunk; a fact
    that also lies in the chunk (window overlap) is grounded there and left out. Each chunk's own
    facts are the control: they must pass.
    """
    chunks = corpus_chunks()
    g = GroundingSpec(min_similarity=None)
    facts = [sentences(c.text.split("\n\n", 1)[-1]) for c in chunks]
    planted = [(c, fact) for i, c in enumerate(chunks) for j in range(len(chunks)) if j != i
               for fact in facts[j][1:3] if fact not in c.text]
    rejected = sum(not offline_verdict("What does the passage say?", fact, c.text, "factual", g, MARKER).kept
                   for c, fact in planted)
    assert len(planted) > 300
    assert rejected / len(planted) >= 0.9, f"{rejected}/{len(planted)} planted answers rejected"
    genuine = [(c, fact) for c, fs in zip(chunks, facts) for fact in fs]
    kept = sum(offline_verdict("What does the passage say?", fact, c.text, "factual", g, MARKER).kept
               for c, fact in genuine)
    assert kept / len(genuine) >= 0.95


def test_lm_checks_judge_support_and_probe_closed_book():
    import json

    import dspy

    from synthboot.lm.scripted import scripted_lm
    from synthboot.sources import GroundedFields
    from synthboot.stages.grounding import lm_verdict

    names = GroundedFields("context", "question", "answer", None)
    example = {"context": CONTEXT, "question": "Who built the lighthouse?", "answer": "Mathilde Arnesen"}

    def reply(prompt: str) -> str:
        if "[[ ## rubric ## ]]" in prompt:  # the judge: unsupported unless the answer is in the context
            score = 5 if "Mathilde" in prompt.split("[[ ## answer ## ]]")[1] else 1
            return json.dumps({"reasoning": "checked", "support_score": score})
        return json.dumps({"answer": "Mathilde Arnesen"})  # the closed-book probe knows it anyway

    lm = scripted_lm([reply], cycle=True)
    judged = GroundingSpec(judge=True)
    assert lm_verdict(example, names, "factual", judged, lm) is None
    bad = lm_verdict({**example, "answer": "Gustave Eiffel"}, names, "factual", judged, lm)
    assert bad is not None and bad.reason == "judge_ungrounded" and bad.details["judge_score"] == 1
    probed = lm_verdict(example, names, "factual", GroundingSpec(closed_book=True), lm)
    assert probed is not None and probed.reason == "answerable_without_context"
    assert lm_verdict(example, names, "unanswerable", GroundingSpec(judge=True, closed_book=True), lm) is None
    assert isinstance(lm, dspy.LM)
