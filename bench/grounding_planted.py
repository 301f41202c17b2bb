"""Planted ungrounded answers: how often the offline grounding checks reject an answer taken from another chunk.

Issue 13's target: at least 90% rejected. The corpus is the test corpus (tests/data/docs, five short
pages in Markdown, reStructuredText, text and HTML), chunked as the tests chunk it. Every chunk is
paired with facts (sentences) of every other chunk as planted answers (a fact that also lies in the
chunk, through window overlap, is grounded there and left out); every chunk's own facts are the
control, which should pass.

    python bench/grounding_planted.py [--embedder local]

Prints the rejection rate of planted answers and the pass rate of genuine ones, with the support and
entity checks alone, then with the embedding-similarity check added.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from synthboot.embeddings import get_embedder
from synthboot.sources import chunk_sections, read_sections, sentences
from synthboot.spec import GroundingSpec, SourcesSpec
from synthboot.stages.grounding import best_similarity, offline_verdict

DOCS = Path(__file__).resolve().parents[1] / "tests" / "data" / "docs"
QUESTION = "What does the passage say?"
MARKER = "The context does not say."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="local")
    args = parser.parse_args()
    settings = SourcesSpec(paths=["-"], max_tokens=60, overlap=10, min_tokens=10)
    chunks = [c for p in sorted(DOCS.iterdir()) for c in chunk_sections(p.name, read_sections(p), settings)]
    facts = [sentences(c.text.split("\n\n", 1)[-1]) for c in chunks]
    planted = [(c.text, fact) for i, c in enumerate(chunks) for j in range(len(chunks)) if j != i
               for fact in facts[j][1:3] if fact not in c.text]
    # The hard case: the answer comes from another chunk of the same document (same subject, same words).
    same_doc = [(c.text, fact) for i, c in enumerate(chunks) for j in range(len(chunks))
                if j != i and chunks[j].document == c.document for fact in facts[j][1:3] if fact not in c.text]
    genuine = [(c.text, fact) for c, fs in zip(chunks, facts) for fact in fs]
    model = get_embedder(args.embedder)
    for label, grounding, embed in (("support + entities", GroundingSpec(min_similarity=None), False),
                                    (f"+ similarity ({args.embedder})", GroundingSpec(), True)):
        for name, pairs, want_kept in (("planted", planted, False), ("planted, same document", same_doc, False),
                                       ("genuine", genuine, True)):
            sims = best_similarity(model, [(a, c) for c, a in pairs]) if embed else [None] * len(pairs)
            verdicts = [offline_verdict(QUESTION, answer, context, "factual", grounding, MARKER, sim)
                        for (context, answer), sim in zip(pairs, sims)]
            right = sum(v.kept == want_kept for v in verdicts)
            reasons = Counter(v.reason for v in verdicts if not v.kept)
            what = "rejected" if not want_kept else "kept"
            print(f"{label:28s} {name}: {right}/{len(pairs)} {what} ({right / len(pairs):.1%}); "
                  f"reasons {dict(reasons)}")
    print(f"{len(chunks)} chunks from {len({c.document for c in chunks})} documents")


if __name__ == "__main__":
    main()
