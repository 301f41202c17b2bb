"""The one place every LM call goes through: the run store, as DSPy's response cache.

DSPy looks every request up in `dspy.cache` before calling a model and stores the response after
(`dspy/clients/execution.py`). Installing a cache backed by the run store makes that path ours for
every backend (the embedded engine, LiteLLM, native providers) and every caller (our stages and
DSPy's optimizers alike): a request seen before is answered from the store at no cost, and a new
one is written with its tokens and latency in one transaction. Resume, "zero calls on a re-run"
and the cost table are all this table.
"""

from __future__ import annotations

import json
import pickle
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dspy
from dspy.clients.cache import Cache
from dspy.utils.exceptions import LMProviderError

from synthboot.cost import call_cost
from synthboot.store import Store

# Names of request settings that carry credentials: `api_key`, `access_token`, `extra_headers`...
# Anchored at the end so `max_tokens` and friends are kept.
_SECRET_KEY = re.compile(r"(?:^|_)(?:api_?key|key|token|secret|password|authorization|headers?|credentials?)$",
                         re.IGNORECASE)
_local = threading.local()


class EmptyReplyError(LMProviderError):
    """The server answered with no text at all; the call failed and is not cached."""


class StoreCache(Cache):
    """DSPy's cache interface over the run store's `lm_calls` table."""

    def __init__(self, store: Store):
        super().__init__(enable_disk_cache=False, enable_memory_cache=False, disk_cache_dir=None)
        self.store = store
        self.hits = 0
        self.misses = 0
        self._counter_lock = threading.Lock()

    def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> Any:
        key = self.cache_key(request, ignored_args_for_cache_key)
        row = self.store.find_call(key)
        if row is None:
            with self._counter_lock:
                self.misses += 1
            _started()[key] = time.perf_counter()
            return None
        with self._counter_lock:
            self.hits += 1
        _note_call(row.id, row.text, row.finish_reason)
        if row.record_format == "json":
            return json.loads(row.record)
        assert isinstance(row.record, bytes)  # a pickle is stored as a BLOB
        return self._prepare_cached_response(pickle.loads(row.record))

    def put(self, request: dict[str, Any], value: Any, ignored_args_for_cache_key: list[str] | None = None,
            enable_memory_cache: bool = True) -> None:
        key = self.cache_key(request, ignored_args_for_cache_key)
        started = _started().pop(key, None)
        record: str | bytes
        try:
            record, record_format = json.dumps(value), "json"
        except (TypeError, ValueError):
            record, record_format = pickle.dumps(value), "pickle"
        text, finish_reason, usage, cost = _summary(value)
        if not (text or "").strip():
            # An empty reply (a proxy's error page parsed as a completion, a wrong-shaped body) is
            # not an answer: storing it would replay it on every resume. Fail the call instead.
            raise EmptyReplyError(f"the LM's reply had no text (finish reason {finish_reason!r}); not stored")
        scope = _current_scope()
        model = _model_of(request)
        prompt_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
        if cost is None:
            # DSPy prices provider calls itself; custom engines (the embedded model) come without one.
            cost = call_cost(model, prompt_tokens, completion_tokens)
        call_id = self.store.add_call(
            key=key, model=model, purpose=scope.purpose if scope else None,
            request=json.dumps(redact(request), default=str), record=record, record_format=record_format,
            text=text, finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            cost=cost, latency_s=None if started is None else round(time.perf_counter() - started, 4))
        _note_call(call_id, text, finish_reason)


class _Scope:
    def __init__(self, purpose: str):
        self.purpose = purpose
        self.call_ids: list[int] = []
        # The stored reply (text, finish reason) of the last call: what a stage parses, without
        # reading back the row it was just written to.
        self.last_reply: tuple[str | None, str | None] | None = None


@contextmanager
def call_scope(purpose: str) -> Iterator[_Scope]:
    """Collect the ids of the store rows that answer the LM calls made in this thread."""
    previous = getattr(_local, "scope", None)
    scope = _local.scope = _Scope(purpose)
    try:
        # DSPy copies its settings into the worker threads of Evaluate, Parallel and the
        # optimizers: carried there, the scope names the calls those threads make too.
        with dspy.context(synthboot_call_scope=scope):
            yield scope
    finally:
        _local.scope = previous


def _current_scope() -> _Scope | None:
    return getattr(_local, "scope", None) or dspy.settings.get("synthboot_call_scope")


@contextmanager
def store_as_lm_cache(store: Store) -> Iterator[StoreCache]:
    """Route every DSPy LM call in this process through `store` while the block runs."""
    cache = StoreCache(store)
    with dspy._cache_lock:
        previous = dspy.__dict__.get("cache")  # None until DSPy built its own lazily
        dspy.cache = cache
    try:
        yield cache
    finally:
        with dspy._cache_lock:
            if previous is None:
                dspy.__dict__.pop("cache", None)
            else:
                dspy.cache = previous


def redact(value: Any) -> Any:
    """The request without credentials: what may be written to disk."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _started() -> dict[str, float]:
    if not hasattr(_local, "started"):
        _local.started = {}
    return _local.started


def _note_call(call_id: int, text: str | None, finish_reason: str | None) -> None:
    scope = _current_scope()
    if scope is not None:
        scope.call_ids.append(call_id)
        scope.last_reply = (text, finish_reason)


def _model_of(request: dict[str, Any]) -> str | None:
    inner = request.get("request")
    if isinstance(inner, dict):
        return inner.get("model")
    return request.get("model")


def _summary(value: Any) -> tuple[str | None, str | None, dict[str, Any], float | None]:
    """Text, finish reason, usage and cost of a cached DSPy response, whatever its format."""
    if isinstance(value, dict) and value.get("_dspy_format"):
        usage = value.get("usage") or {}
        outputs = value.get("outputs") or []
        first = outputs[0] if outputs else None
        text = first.get("text") if isinstance(first, dict) else first
        responses = value.get("responses") or []
        finish = responses[0].get("finish_reason") if responses and isinstance(responses[0], dict) else None
        return text, finish, usage, value.get("cost")
    # LiteLLM's ModelResponse (the compatibility path).
    try:
        choice = value.choices[0]
        usage = dict(getattr(value, "usage", None) or {})
        cost = (getattr(value, "_hidden_params", None) or {}).get("response_cost")
        return choice.message.content, choice.finish_reason, usage, cost
    except (AttributeError, IndexError, TypeError):
        return None, None, {}, None
