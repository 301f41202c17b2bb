"""Saved KV states of earlier prompts, so a call restores the longest prefix it shares with one.

llama-cpp-python reuses only the prefix a prompt shares with the *previous* prompt of the same
`Llama`. Generation prompts differ early: the `conditioned` strategy writes each call's
difficulty and topic into the JSON schema inside the system message, so two calls in a row share
about 345 of 750 tokens and the rest, identical instructions included, is evaluated again. Keeping
each prompt's KV state (llama.cpp's per-sequence state, about 23 KB a token for SmolLM2) lets a
call start from the earlier prompt it shares most with: same difficulty, say, up to the topic.

The store is shared by the engine's instances (states move between contexts of one model) and
bounded in bytes, least recently used first out. llama-cpp-python's own `LlamaRAMCache` is not
used: its states carry a copy of the logits buffer (n_batch x n_vocab floats: 100 MB for SmolLM2,
311 MB for Qwen) each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

# A restore (a memcpy of the state) pays once it saves this many tokens of prompt evaluation.
MIN_GAIN_TOKENS = 32


@dataclass(frozen=True)
class PrefixState:
    tokens: np.ndarray  # the prompt tokens whose KV the state holds (int32)
    state: bytes  # llama_state_seq_get_data of sequence 0


class PrefixStates:
    """A thread-safe, byte-bounded LRU of prompt KV states, searched by longest common prefix."""

    def __init__(self, capacity_bytes: int = 256 << 20):
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[bytes, PrefixState] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.tokens_restored = 0

    def best(self, tokens: np.ndarray, *, better_than: int) -> tuple[PrefixState, int] | None:
        """The saved state sharing the longest prefix with `tokens`, if it beats `better_than` by enough."""
        with self._lock:
            found, length = None, better_than + MIN_GAIN_TOKENS - 1
            for key, saved in self._states.items():
                shared = common_prefix(saved.tokens, tokens)
                if shared > length:
                    found, length = key, shared
            if found is None:
                return None
            self._states.move_to_end(found)
            self.hits += 1
            self.tokens_restored += length
            return self._states[found], length

    def add(self, tokens: np.ndarray, state: bytes) -> None:
        key = tokens.tobytes()
        with self._lock:
            if key in self._states:
                self._states.move_to_end(key)
                return
            self._states[key] = PrefixState(tokens.copy(), state)
            self._bytes += len(state)
            while self._bytes > self.capacity_bytes and len(self._states) > 1:
                _, dropped = self._states.popitem(last=False)
                self._bytes -= len(dropped.state)

    def __len__(self) -> int:
        return len(self._states)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens two token arrays share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
