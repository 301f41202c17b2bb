"""Request and token rate limits, and retries with jitter, for remote LMs.

DSPy already classifies transient failures (`is_retryable_lm_error`: 429, 5xx, timeouts, transport
errors), parses `Retry-After` into `exc.retry_after`, and retries with 1, 2, 4... s backoff
(`dspy/clients/execution.py`). What it lacks, and this module adds:

- requests-per-minute and tokens-per-minute limits shared by every thread calling one model;
- jitter on the backoff, so 32 workers that hit a 429 together do not all retry together;
- a shared cool-down: a `Retry-After` seen by one worker holds back every worker on that model.

`LimitedEngine` wraps a plain `dspy.LM` (DSPy picks the backend, builds the HTTP request, maps
errors) as a DSPy engine, so the limits apply to every attempt, and the outer `dspy.LM` keeps the
run store as its cache: a cached call never waits for a rate limit. When DSPy routes the model to
its native lm15 engine, that engine is built once (`native_engine`) and called directly: going
through the inner `dspy.LM` again re-selected the backend and re-priced the reply on every call,
a fifth of the client's CPU per call at 32 calls in flight (bench/latency.py).
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.lm15 import UnsupportedFeatureError, response_to_events
from dspy.utils.exceptions import LMRateLimitError, is_retryable_lm_error

from synthboot.lm.failures import note_failed_attempt


_rng = random.Random()


@dataclass(frozen=True)
class Limits:
    """How hard one model may be called. None means unlimited."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float | None = None


class _Bucket:
    """A token bucket that refills continuously at `per_minute / 60` per second.

    It holds at most ten seconds of allowance, so a run starts with a small burst rather than a
    whole minute's worth at once. A cost larger than the bucket is let through when the bucket is
    full and leaves it in debt, so one big request can never wait forever.
    """

    def __init__(self, per_minute: float, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10.0)
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, cost: float) -> float:
        """Seconds until `cost` can be taken (0 when it can be taken now)."""
        self._refill()
        need = min(cost, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, cost: float) -> None:
        self.level -= cost

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests- and tokens-per-minute for one model, shared by threads; plus a shared cool-down."""

    def __init__(self, limits: Limits, clock=time.monotonic, sleep=time.sleep):
        self.limits = limits
        self.clock, self.sleep = clock, sleep
        self._requests = _Bucket(limits.requests_per_minute, clock) if limits.requests_per_minute else None
        self._tokens = _Bucket(limits.tokens_per_minute, clock) if limits.tokens_per_minute else None
        self._cool_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers spent waiting here (for reports and benchmarks)

    def acquire(self, tokens: float = 0.0) -> None:
        """Block until one request of about `tokens` tokens may be sent."""
        while True:
            with self._lock:
                wait = max(self._cool_until - self.clock(),
                           self._requests.wait_time(1) if self._requests else 0.0,
                           self._tokens.wait_time(tokens) if self._tokens and tokens else 0.0)
                if wait <= 0:
                    if self._requests:
                        self._requests.take(1)
                    if self._tokens and tokens:
                        self._tokens.take(tokens)
                    return
                self.waited_s += wait
            self.sleep(wait)

    def settle(self, estimated: float, actual: float | None) -> None:
        """Correct the token bucket once a reply tells how many tokens the request really used."""
        if self._tokens is None or actual is None:
            return
        with self._lock:
            if actual > estimated:
                self._tokens.take(actual - estimated)
            else:
                self._tokens.give_back(estimated - actual)

    def cool_down(self, seconds: float) -> None:
        """Hold back every caller for `seconds` (a provider's Retry-After)."""
        with self._lock:
            self._cool_until = max(self._cool_until, self.clock() + seconds)


def retry_delay(attempt: int, retry_after: float | None, limits: Limits, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based).

    A provider's Retry-After is honoured as a floor, with up to 10% (at most 1 s) added so waiting
    workers spread out; otherwise exponential backoff with full jitter (AWS's name for drawing
    uniformly from [0, base * 2^attempt]), capped at `backoff_max_s`.
    """
    rng = rng or _rng
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return retry_after + rng.uniform(0, min(1.0, 0.1 * retry_after))
    ceiling = min(limits.backoff_max_s, limits.backoff_base_s * 2 ** min(attempt, 30))
    return rng.uniform(0, ceiling)


def estimate_tokens(request: Any) -> float:
    """Tokens a request may use before the reply says: about 4 characters a token, plus max_tokens."""
    chars = sum(len(m.text or "") for m in request.messages)
    system = request.system
    if system is not None:
        chars += len(system) if isinstance(system, str) else sum(len(p.text or "") for p in system)
    return chars / 4 + (request.config.max_tokens or 0)


@dataclass(frozen=True)
class NativeEngine:
    """DSPy's lm15 engine for one model, and the provider it routes to (for error mapping)."""

    engine: Any
    provider: str

    def complete(self, request: Any, fallback: dspy.LM) -> Any:
        try:
            # What DSPy checks before each native call: a request lm15 cannot carry goes the way
            # DSPy would send it (LiteLLM), through the inner LM.
            self.engine.plan(request)
        except UnsupportedFeatureError:
            return fallback(request)
        try:
            return self.engine.complete(request)
        except Exception as exc:
            from dspy.clients.errors import wrap_error  # here: only a failed call needs it

            # The same projection DSPy applies at its boundary: lm15 errors become DSPy's
            # LMRateLimitError (with retry_after), LMTransportError...
            error = wrap_error(exc, model=fallback.model, provider=self.provider)
            if error is exc:
                raise
            raise error from exc


def native_engine(lm: dspy.LM) -> NativeEngine | None:
    """The lm15 engine DSPy would call for `lm`, built as DSPy builds it; None when DSPy would not
    route `lm` natively (LiteLLM, declared providers, client settings lm15 does not take)."""
    try:
        from dspy.clients.backend_selection import select_backend
        from dspy.clients.engines import LM15Engine
        from dspy.clients.engines.lm15_engine import timeouts_for
        from dspy.lm15 import RouterConfig

        if getattr(lm, "_providers", ()) or not isinstance(lm._engine_spec, str):
            return None
        selection = select_backend(lm)
        if not selection.native or selection.resolution is None:
            return None
        clients, provider = selection.clients, selection.resolution.provider
        url = clients.get("api_base") or clients.get("base_url")
        config = RouterConfig(api_keys={provider: clients["api_key"]} if "api_key" in clients else None,
                              base_urls={provider: url} if url else None, timeouts=timeouts_for(clients.get("timeout")))
        return NativeEngine(LM15Engine(config, model_type=lm.model_type), provider)
    except Exception:  # a DSPy that builds engines differently: go through the inner LM, as before
        return None


class LimitedEngine:
    """A DSPy engine that sends each request through `inner` (an uncached `dspy.LM`) under limits."""

    def __init__(self, inner: dspy.LM, limiter: RateLimiter):
        self.inner = inner
        self.limiter = limiter
        self.native = native_engine(inner)
        self.retries = 0  # attempts that failed and were retried (counted for reports and tests)
        self._count_lock = threading.Lock()

    # Capabilities are the inner LM's (the same model behind the same backend), read once: DSPy
    # asks for them several times per call, and each answer is a metadata lookup.
    @functools.cached_property
    def supports_response_schema(self) -> bool:
        return self.inner.supports_response_schema

    @functools.cached_property
    def supports_function_calling(self) -> bool:
        return self.inner.supports_function_calling

    @functools.cached_property
    def supports_reasoning(self) -> bool:
        return self.inner.supports_reasoning

    @functools.cached_property
    def supported_params(self) -> frozenset:
        return frozenset(self.inner.supported_params)

    def complete(self, request: Any) -> Any:
        limits = self.limiter.limits
        estimate = estimate_tokens(request)
        for attempt in itertools.count():
            self.limiter.acquire(estimate)
            try:
                response = self.native.complete(request, self.inner) if self.native else self.inner(request)
            except Exception as exc:
                if attempt >= limits.max_retries or not is_retryable_lm_error(exc):
                    note_failed_attempt(exc, attempt=attempt, retried=False, model=self.inner.model)
                    raise
                retry_after = getattr(exc, "retry_after", None)
                delay = retry_delay(attempt, retry_after, limits)
                # Each failed attempt is counted in the run store (issue 7: synthboot.lm.failures).
                note_failed_attempt(exc, attempt=attempt, retried=True, delay_s=round(delay, 3), model=self.inner.model)
                if isinstance(exc, LMRateLimitError):
                    # The provider is over its limit for everyone on this key, not just this worker.
                    self.limiter.cool_down(delay)
                with self._count_lock:
                    self.retries += 1
                time.sleep(delay)
                continue
            usage = getattr(response, "usage", None)
            actual = None if usage is None else (usage.input_tokens or 0) + (usage.output_tokens or 0)
            self.limiter.settle(estimate, actual or None)
            return response

    def stream(self, request: Any):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        if self.native:
            self.native.engine.close()
        self.inner.close()


# One limiter per (model, api_base) per process: the generator and the judge on the same model
# share its budget, as they share the provider's.
_limiters: dict[tuple[str, str | None, Limits], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(model: str, api_base: str | None, limits: Limits) -> RateLimiter:
    with _limiters_lock:
        key = (model, api_base, limits)
        if key not in _limiters:
            _limiters[key] = RateLimiter(limits)
        return _limiters[key]


def limited_lm(name: str, *, limits: Limits, temperature: float | None = None, max_tokens: int | None = None,
               **client: Any) -> dspy.LM:
    """`dspy.LM(name, ...)` whose every attempt goes through a shared `RateLimiter` with jittered retries.

    `client` holds the connection settings (api_base, api_key) for the inner LM.
    """
    if limits.timeout_s is not None:
        client["timeout"] = limits.timeout_s
    # The inner LM only talks to the server: no cache (the outer LM's is the run store), no retries
    # (LimitedEngine owns them, with jitter).
    inner = dspy.LM(name, temperature=temperature, max_tokens=max_tokens, num_retries=0, cache=False, **client)
    engine = LimitedEngine(inner, limiter_for(name, client.get("api_base"), limits))
    return dspy.LM(name, engine=engine, temperature=temperature, max_tokens=max_tokens, num_retries=0)


def limits_of(generate: Any, **overrides: Any) -> Limits:
    """The `Limits` a spec's `generate:` section asks for; `overrides` (CLI flags) win when not None."""
    values = {"requests_per_minute": generate.requests_per_minute, "tokens_per_minute": generate.tokens_per_minute,
              "max_retries": generate.max_retries, "timeout_s": generate.timeout_s}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Limits(**values)
