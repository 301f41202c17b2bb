"""Grammar-constrained sampling where the grammar sees the top candidates, not the whole vocabulary.

llama-cpp-python 0.3 builds its sampler chain as penalties -> grammar -> top-k -> typical -> top-p
-> min-p -> temperature -> dist, so the JSON grammar is checked against every token of the
vocabulary (49k for SmolLM2, 152k for Qwen) at every step, which halves SmolLM2's generation speed.

`ShortlistGrammarSampler` picks the same token with far fewer grammar checks: after the penalties
it asks the grammar only about the 256 (then 4,096) highest logits; when at least top-k of those
are allowed, the k best allowed tokens of the whole vocabulary are among them, so the rest of the
chain, run on that shortlist, picks exactly what the full chain picks (same seed, same random
draw). Only steps where fewer than k tokens are allowed (JSON punctuation, say) run the grammar
over the whole vocabulary, as before. Outputs therefore equal llama-cpp-python's, token for token
(ties between equal logits aside).

`lazy=True` switches to llama.cpp's own `common_sampler` rule instead: sample without
the grammar, ask the grammar about that one token, and re-pick constrained only on rejection. It
is a little faster but samples a different sequence than the eager chain when temperature > 0
(top-k/top-p cut the unconstrained distribution, and a rejection draws the generator twice);
still grammar-valid and deterministic for a seed.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from llama_cpp import Llama, llama_cpp
from llama_cpp import _internals as internals

# Field layout of llama.cpp's `llama_token_data` {int32 id; float logit; float p}.
TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class ShortlistGrammarSampler:
    """One generation's sampler: the usual chain, with the grammar checked on a shortlist first.

    `seed` overrides the `Llama`'s current seed; with `grammar=None` it is the plain chain.

    Has the one method `Llama.sample` calls on its `_sampler`: `sample(ctx, idx) -> token`, which
    also accepts the token into the chain (penalty history, grammar state).
    """

    def __init__(self, llama: Llama, grammar: Any, *, top_k: int, top_p: float, min_p: float,
                 typical_p: float, temp: float, repeat_penalty: float, frequency_penalty: float,
                 presence_penalty: float, lazy: bool = False, seed: int | None = None):
        # No grammar: the plain chain (what `Llama._init_sampler` builds without one).
        self.lazy = lazy and grammar is not None
        self.constrained = grammar is not None
        seed = llama._seed if seed is None else seed
        self.n_vocab = llama.n_vocab()
        # Penalties apart from the rest of the chain: they must see the whole vocabulary, and the
        # constrained re-pick below runs the rest on a short list.
        self.penalties = internals.LlamaSampler()
        self.penalties.add_penalties(n_vocab=self.n_vocab, penalty_last_n=llama.last_n_tokens_size,
                                     penalty_repeat=repeat_penalty, penalty_freq=frequency_penalty,
                                     penalty_present=presence_penalty)
        self.chain = internals.LlamaSampler()
        # The same steps, in the same order, as `Llama._init_sampler` after its grammar.
        if temp < 0.0:
            self.chain.add_dist(seed)
            self.keep = self.n_vocab
        elif temp == 0.0:
            self.chain.add_greedy()
            self.keep = 1
        else:
            self.chain.add_top_k(top_k)
            self.chain.add_typical(typical_p, 1)
            self.chain.add_top_p(top_p, 1)
            self.chain.add_min_p(min_p, 1)
            self.chain.add_temp(temp)
            self.chain.add_dist(seed)
            self.keep = top_k if top_k > 0 else self.n_vocab
        self.grammar = internals.LlamaSampler()
        if grammar is not None:
            self.grammar.add_grammar(llama._model, grammar)
        self.rejections = 0
        self.full_passes = 0
        self.samples = 0
        self._ids = np.arange(self.n_vocab, dtype=np.intc)
        self._full = _TokenArray(self.n_vocab)
        self._shortlists = [_TokenArray(size) for size in SHORTLISTS if size < self.n_vocab]
        self._one = _TokenArray(1)

    def sample(self, ctx: Any, idx: int = -1) -> int:
        if self.lazy:
            token = self._pick(ctx, idx, constrained=False)
            if not self._allowed(token):
                self.rejections += 1
                token = self._pick(ctx, idx, constrained=True)
        else:
            token = self._pick(ctx, idx, constrained=self.constrained)
        self.samples += 1
        self.grammar.accept(token)
        self.penalties.accept(token)
        self.chain.accept(token)
        return token

    def _pick(self, ctx: Any, idx: int, *, constrained: bool) -> int:
        """Run the chain on this step's logits; `constrained`: only over tokens the grammar allows.

        A constrained pick asks the grammar about the SHORTLISTS' highest (penalised) logits first.
        When at least `keep` of them are allowed (top-k's k; 1 for greedy), the k best allowed
        tokens of the whole vocabulary are among them, so running the chain on the shortlist picks
        what grammar-on-everything -> chain would pick. Otherwise the grammar sees the whole vocabulary.
        """
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        full = self._full.fill(self._ids, logits)
        llama_cpp.llama_sampler_apply(self.penalties.sampler, full.pointer)
        if not constrained:
            return full.apply(self.chain)
        penalised = full.data["logit"]
        for short in self._shortlists:
            best = np.argpartition(penalised, -short.size)[-short.size:]
            short.fill(full.data["id"][best], penalised[best]).apply(self.grammar, select=False)
            if np.count_nonzero(np.isfinite(short.data["logit"])) >= self.keep:
                return short.apply(self.chain)
        self.full_passes += 1
        full.apply(self.grammar, select=False)
        return full.apply(self.chain)

    def _allowed(self, token: int) -> bool:
        one = self._one.fill(np.array([token], dtype=np.intc), np.ones(1, dtype=np.single))
        one.apply(self.grammar, select=False)
        return bool(np.isfinite(one.data["logit"][0]))


# How many of the highest logits the grammar is asked about, in turn, before the whole vocabulary.
SHORTLISTS = (256, 4096)


class _TokenArray:
    """A `llama_token_data_array` over a numpy buffer, refilled each step without allocating."""

    def __init__(self, size: int):
        self.size = size
        self.data = np.zeros(size, dtype=TOKEN_DATA)
        self._data_p = self.data.ctypes.data_as(llama_cpp.llama_token_data_p)
        self.array = llama_cpp.llama_token_data_array(data=self._data_p, size=size, selected=-1, sorted=False)
        self.pointer = ctypes.byref(self.array)

    def fill(self, ids: np.ndarray, logits: np.ndarray) -> _TokenArray:
        self.data["id"] = ids
        self.data["logit"] = logits
        self.data["p"] = 0.0
        # Samplers may shrink, reorder or re-point the array: restore it before every use.
        self.array.data, self.array.size, self.array.selected, self.array.sorted = self._data_p, self.size, -1, False  # type: ignore[assignment]
        return self

    def apply(self, sampler: Any, *, select: bool = True) -> int:
        llama_cpp.llama_sampler_apply(sampler.sampler, self.pointer)
        return int(self.array.data[self.array.selected].id) if select else -1
