"""The embedded engine's `Llama`: faster grammar sampling and prompt-prefix states on top of llama-cpp-python.

Everything else (chat templates, stop strings, the prefix shared with the previous prompt) is
llama-cpp-python's own; two hooks are added:

- `_init_sampler`: with a grammar, `synthboot.lm.sampling.ShortlistGrammarSampler` (same tokens,
  the grammar checked on the top candidates only) or its `lazy` variant;
- `generate`: before evaluating a prompt, restore the saved KV state of the earlier prompt that
  shares the most tokens with it (`synthboot.lm.prefix_states`), when that beats what the context
  already holds; once the prompt is evaluated, save its state for later calls.
"""

from __future__ import annotations

import ctypes
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
from llama_cpp import Llama, llama_cpp

from synthboot.lm.prefix_states import PrefixStates, common_prefix
from synthboot.lm.sampling import ShortlistGrammarSampler

# Prompts shorter than this are not worth a saved state.
MIN_SAVED_PROMPT = 64


class EmbeddedLlama(Llama):
    """`Llama` with a grammar mode (`eager`, `shortlist`, `lazy`) and an optional shared `PrefixStates`."""

    def __init__(self, *args: Any, grammar_mode: str = "shortlist", prefix_states: PrefixStates | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.grammar_mode = grammar_mode
        self.prefix_states = prefix_states
        self.last_sampler: ShortlistGrammarSampler | None = None

    def _init_sampler(self, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, typical_p: float = 1.0,
                      temp: float = 0.80, repeat_penalty: float = 1.0, frequency_penalty: float = 0.0,
                      presence_penalty: float = 0.0, tfs_z: float = 1.0, mirostat_mode: int = 0,
                      mirostat_eta: float = 0.1, mirostat_tau: float = 5.0, penalize_nl: bool = True,
                      logits_processor: Any = None, grammar: Any = None):
        if grammar is None or self.grammar_mode == "eager" or mirostat_mode != 0 or logits_processor is not None:
            return super()._init_sampler(
                top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, temp=temp, repeat_penalty=repeat_penalty,
                frequency_penalty=frequency_penalty, presence_penalty=presence_penalty, tfs_z=tfs_z,
                mirostat_mode=mirostat_mode, mirostat_eta=mirostat_eta, mirostat_tau=mirostat_tau,
                penalize_nl=penalize_nl, logits_processor=logits_processor, grammar=grammar)
        self.last_sampler = ShortlistGrammarSampler(
            self, grammar, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, temp=temp,
            repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty, presence_penalty=presence_penalty,
            lazy=self.grammar_mode == "lazy")
        return self.last_sampler

    def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Generator[int, Any, None]:
        if self.prefix_states is None or kwargs.get("reset", True) is False:
            yield from super().generate(tokens, *args, **kwargs)
            return
        prompt = np.asarray(tokens, dtype=np.intc)
        self._restore_best_prefix(prompt)
        inner = super().generate(tokens, *args, **kwargs)
        try:
            first = next(inner)  # the prompt is evaluated now, the first token sampled, not yet evaluated
        except StopIteration:
            return
        if len(prompt) >= MIN_SAVED_PROMPT and self.n_tokens == len(prompt):
            self._save_prefix(prompt)
        sent = yield first
        while True:
            try:
                token = inner.send(sent)
            except StopIteration:
                return
            sent = yield token

    def _restore_best_prefix(self, prompt: np.ndarray) -> None:
        assert self.prefix_states is not None
        live = common_prefix(self.input_ids[: self.n_tokens], prompt)
        found = self.prefix_states.best(prompt, better_than=live)
        if found is None:
            return
        saved, _ = found
        self._ctx.kv_cache_clear()
        buffer = (ctypes.c_uint8 * len(saved.state)).from_buffer_copy(saved.state)
        if llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buffer, len(saved.state), 0) != len(saved.state):
            self.reset()  # the state did not fit this context: evaluate the whole prompt
            return
        self.input_ids[: len(saved.tokens)] = saved.tokens
        self.n_tokens = len(saved.tokens)
        self._requires_eval = True  # the logits are stale: generate re-evaluates at least one token

    def _save_prefix(self, prompt: np.ndarray) -> None:
        assert self.prefix_states is not None
        size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buffer, size, 0)
        self.prefix_states.add(prompt, ctypes.string_at(buffer, written))
