"""The built-in `rag` program: retrieve from the run's own chunks, then answer (issue 13).

`synthboot optimize RUN --program rag` builds it for a run whose spec has `sources:`. Retrieval
fuses two rankings of the chunks by reciprocal rank (each chunk scores sum 1 / (60 + rank)):
BM25 over their words (bm25s) and cosine similarity of their packaged MiniLM embeddings. The
answer is a DSPy module over `context, question -> answer` (named as the task's fields), so the
optimizers tune its prompt and demos like any other program's. The program is called with the
question alone; the example's context (the chunk it was generated from) is the gold passage, and
`retrieval_recall` is the share of an example's gold chunks among the retrieved ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy
import numpy as np

from synthboot.errors import SynthbootError
from synthboot.optimize.metrics import bootstrap_ci
from synthboot.optimize.programs import Program
from synthboot.schema import TaskSchema
from synthboot.sources import grounded_fields
from synthboot.spec import Spec
from synthboot.store import Store

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.), damping the top ranks


class HybridRetriever:
    """BM25 and embedding rankings of a fixed list of passages, fused by reciprocal rank."""

    def __init__(self, passages: Sequence[str], *, embedder: str = "local"):
        import bm25s

        if not passages:
            raise SynthbootError("the run has no chunks to retrieve from: is `sources:` in its spec?")
        self.passages = list(passages)
        self.embedder = embedder
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(self.passages, stopwords="en", show_progress=False), show_progress=False)
        self.vectors = self._encode(self.passages)

    def _encode(self, texts: list[str]) -> np.ndarray:
        from synthboot.embeddings import get_embedder  # the model is cached per process, not held here

        return get_embedder(self.embedder).encode(texts)

    def ranks(self, query: str) -> list[int]:
        """Passage indices, best first."""
        import bm25s

        n = len(self.passages)
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        fused = np.zeros(n)
        if tokens.vocab:  # a query of stopwords only has no BM25 ranking
            docs, _ = self.bm25.retrieve(tokens, k=n, show_progress=False)
            fused[docs[0]] += 1.0 / (RRF_K + 1 + np.arange(n))
        order = np.argsort(-(self.vectors @ self._encode([query])[0]), kind="stable")
        fused[order] += 1.0 / (RRF_K + 1 + np.arange(n))
        return [int(i) for i in np.argsort(-fused, kind="stable")]

    def __call__(self, query: str, k: int) -> list[int]:
        return self.ranks(query)[:k]

    def __deepcopy__(self, memo: dict) -> HybridRetriever:
        # Read-only and large (its index, its vectors): the copies of a program DSPy makes share it.
        return self


class RAG(dspy.Module):
    """Retrieve `k` chunks for the question, then answer from them."""

    def __init__(self, retriever: HybridRetriever, *, context: str, question: str, answer: str, k: int = 3,
                 module: str = "cot"):
        super().__init__()
        self.retriever, self.k = retriever, k
        self.question_field, self.answer_field = question, answer
        sig = dspy.Signature(f"{context}, {question} -> {answer}",
                             "Answer the question from the context only.")
        self.respond = dspy.ChainOfThought(sig) if module == "cot" else dspy.Predict(sig)
        self.context_field = context

    def forward(self, **inputs) -> dspy.Prediction:
        question = str(inputs[self.question_field])
        hits = self.retriever(question, self.k)
        context = "\n\n".join(self.retriever.passages[i] for i in hits)
        out = self.respond(**{self.context_field: context, self.question_field: question})
        return dspy.Prediction(**{self.answer_field: out.get(self.answer_field)}, retrieved=hits)


def rag_program(store: Store, spec: Spec, schema: TaskSchema, module: str = "cot", k: int = 3) -> Program:
    """The `rag` program over the run's current chunks, for the spec's context, question and answer fields."""
    if spec.sources is None:
        raise SynthbootError("--program rag needs a run whose spec has `sources:` (documents to retrieve from)")
    names = grounded_fields(spec, schema)
    retriever = HybridRetriever([c.text for c in store.chunks()], embedder=spec.sources.grounding.embedder)
    program = RAG(retriever, context=names.context, question=names.question, answer=names.answer, k=k, module=module)
    return Program(program, [names.question], [names.answer])


def retrieval_recall(store: Store, program: RAG, candidate_ids: list[int],
                     questions: list[str]) -> list[float]:
    """Per example: the share of its gold chunks (those it was generated from) among the top `k` retrieved."""
    index = {c.hash: i for i, c in enumerate(store.chunks())}
    links = store.candidate_chunks()
    out = []
    for cid, question in zip(candidate_ids, questions, strict=True):
        gold = {index[h] for h in links.get(cid, ("", []))[1] if h in index}
        if not gold:
            continue  # a document changed since: its chunk is not in the index any more
        hits = set(program.retriever(question, program.k))
        out.append(len(gold & hits) / len(gold))
    return out


def recall_score(values: list[float]) -> tuple[int, float, float, float]:
    mean, low, high = bootstrap_ci(values)
    return len(values), mean, low, high
