"""Retrieval recall of the `rag` program's hybrid retriever on hand-written questions.

The corpus is the test corpus (tests/data/docs), chunked as the tests chunk it; each question below
was written by hand for one chunk (named by document and heading) in words of a reader, not copied
from the text. Recall@k: the share of questions whose chunk is among the top k retrieved.

    python bench/rag_retrieval.py [--embedder local]

Prints recall@1 and recall@3 for BM25 alone, embeddings alone and the fused ranking the program uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synthboot.optimize.rag import HybridRetriever
from synthboot.sources import chunk_sections, read_sections
from synthboot.spec import SourcesSpec

DOCS = Path(__file__).resolve().parents[1] / "tests" / "data" / "docs"
QUESTIONS = [
    ("tea.md", "Brewing tea", "What decides how a cup of tea tastes?"),
    ("tea.md", "Green tea", "How hot should the water be for green tea?"),
    ("tea.md", "Green tea", "How many times can good green leaves be reused?"),
    ("tea.md", "Black tea", "Which Indian regions are famous for black tea?"),
    ("tea.md", "Storing tea", "How long does black tea stay good?"),
    ("lighthouse.rst", "Korven Point Lighthouse", "Why was the lighthouse at Korven Point built?"),
    ("lighthouse.rst", "The tower", "How far away can the light be seen?"),
    ("lighthouse.rst", "Keepers", "When did the station stop having keepers?"),
    ("lighthouse.rst", "Keepers", "Who was the last head keeper?"),
    ("bicycle.txt", "", "How do I oil a bike chain?"),
    ("bicycle.txt", "", "What pressure should mountain bike tyres have?"),
    ("bicycle.txt", "", "When should disc brake pads be changed?"),
    ("volcanoes.html", "Volcanoes", "What is the difference between magma and lava?"),
    ("volcanoes.html", "Shield volcanoes", "Which is the biggest shield volcano?"),
    ("volcanoes.html", "Stratovolcanoes", "Which volcano destroyed Pompeii?"),
    ("compost.md", "Greens and browns", "What should never go into a compost heap?"),
    ("compost.md", "Turning the heap", "How often should I turn my compost?"),
    ("compost.md", "Turning the heap", "How can I tell that compost is ready?"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="local")
    args = parser.parse_args()
    settings = SourcesSpec(paths=["-"], max_tokens=60, overlap=10, min_tokens=10)
    chunks = [c for p in sorted(DOCS.iterdir()) for c in chunk_sections(p.name, read_sections(p), settings)]
    retriever = HybridRetriever([c.text for c in chunks], embedder=args.embedder)

    def gold(document: str, heading: str, question: str) -> set[int]:
        # The chunks of that section holding the answer's words (a section may span overlapping windows).
        return {i for i, c in enumerate(chunks) if c.document == document and c.heading.endswith(heading)}

    import bm25s

    results: dict[str, list[tuple[bool, bool]]] = {"bm25": [], "embedding": [], "fused (rag)": []}
    for document, heading, question in QUESTIONS:
        want = gold(document, heading, question)
        tokens = bm25s.tokenize([question], stopwords="en", show_progress=False)
        docs, _ = retriever.bm25.retrieve(tokens, k=len(chunks), show_progress=False)
        bm25 = [int(i) for i in docs[0]]
        emb = [int(i) for i in np.argsort(-(retriever.vectors @ retriever._encode([question])[0]))]
        for name, ranking in (("bm25", bm25), ("embedding", emb), ("fused (rag)", retriever.ranks(question))):
            results[name].append((ranking[0] in want, bool(want & set(ranking[:3]))))
    print(f"{len(QUESTIONS)} questions over {len(chunks)} chunks of {len({c.document for c in chunks})} documents")
    for name, hits in results.items():
        r1 = sum(a for a, _ in hits) / len(hits)
        r3 = sum(b for _, b in hits) / len(hits)
        print(f"{name:12s} recall@1 {r1:.1%}  recall@3 {r3:.1%}")


if __name__ == "__main__":
    main()
