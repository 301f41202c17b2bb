"""Which source documents and chunks produced kept examples, and which produced none (issue 13).

A generated example belongs to the chunk its task was built on (hop 0; a reasoning question's
neighbours are context, not its source). Only the chunks of the latest read of the sources count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from synthboot.store import Store


@dataclass
class ChunkCoverage:
    position: int
    heading: str
    hash: str
    tokens: int
    generated: int = 0
    kept: int = 0


@dataclass
class DocumentCoverage:
    document: str
    chunks: list[ChunkCoverage] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return sum(c.kept for c in self.chunks)

    @property
    def generated(self) -> int:
        return sum(c.generated for c in self.chunks)

    @property
    def chunks_with_kept(self) -> int:
        return sum(1 for c in self.chunks if c.kept)


def source_coverage(store: Store, kept_ids: set[int]) -> list[DocumentCoverage]:
    """Per current document, its chunks with how many examples each produced and how many were kept."""
    generated: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for cid, (_, hashes) in store.candidate_chunks().items():
        generated[hashes[0]] += 1
        if cid in kept_ids:
            kept[hashes[0]] += 1
    docs: dict[str, DocumentCoverage] = {}
    for chunk in store.chunks():
        doc = docs.setdefault(chunk.document, DocumentCoverage(chunk.document))
        doc.chunks.append(ChunkCoverage(chunk.position, chunk.heading, chunk.hash, chunk.tokens,
                                        generated[chunk.hash], kept[chunk.hash]))
    return list(docs.values())


def coverage_line(coverage: list[DocumentCoverage]) -> str:
    """One line for `status`: documents and chunks, how many produced kept examples, which documents none."""
    chunks = sum(len(d.chunks) for d in coverage)
    with_kept = sum(d.chunks_with_kept for d in coverage)
    docs_with_kept = sum(1 for d in coverage if d.kept)
    none = [d.document for d in coverage if not d.kept]
    line = (f"sources: {len(coverage)} documents, {chunks} chunks; kept examples from {with_kept} chunks "
            f"of {docs_with_kept} documents")
    if none:
        line += f"; none from {len(none)}: " + ", ".join(none[:5]) + (" ..." if len(none) > 5 else "")
    return line
