"""Every failed LM attempt, in the run store: what happened to each call, not only how it ended.

Remote calls are retried on 429s, 5xx replies, timeouts and dropped connections
(`synthboot.lm.limits`); a run that succeeded after forty rate limits would otherwise look the
same as one that met none. The retry loop calls `note_failed_attempt` for each failed attempt, and
one row lands in `lm_attempt_failures` (store migration 5) of the run store that is DSPy's cache
at that moment, keyed by the call's cache key: per call, how many attempts failed, why, and
whether the call then succeeded (its key is in `lm_calls`) or gave up (`retried = 0`).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import dspy
from dspy.utils.exceptions import LMProviderError, LMTransportError

from synthboot.errors import LMUnavailableError, ProviderError
from synthboot.lm.calls import StoreCache, _current_scope, _started
from synthboot.messages import provider_message
from synthboot.secrets import scrub
from synthboot.store import Store


def note_failed_attempt(error: BaseException, *, attempt: int, retried: bool, delay_s: float | None = None,
                        model: str | None = None) -> None:
    """Record one failed attempt of the LM call running in this thread (no-op outside a run)."""
    cache = dspy.__dict__.get("cache")
    if not isinstance(cache, StoreCache):
        return
    pending = _started()
    key = next(reversed(pending)) if pending else None  # the call this thread is waiting on
    scope = _current_scope()
    try:
        cache.store.add_attempt_failure(
            call_key=key, purpose=scope.purpose if scope else None, model=model, attempt=attempt,
            error_type=type(error).__name__, status=_status_of(error), message=scrub(str(error))[:1000],
            retry_after=_float(getattr(error, "retry_after", None)), delay_s=delay_s, retried=retried)
    except Exception:  # noqa: BLE001 - bookkeeping must never turn a retry into a crash
        pass


def attempt_failures(store: Store) -> Counter:
    """Failed attempts by error type (retried or final), over the whole run."""
    return Counter(store.attempt_failure_counts())


def call_history(store: Store) -> dict[str | None, dict[str, Any]]:
    """Per call key: failed attempts by error type, and whether the call is now stored."""
    stored = store.call_keys()
    out: dict[str | None, dict[str, Any]] = {}
    for key, error_type, n in store.attempt_failures_by_call():
        entry = out.setdefault(key, {"failures": Counter(), "stored": key in stored})
        entry["failures"][error_type] += n
    return out


def _status_of(error: BaseException) -> int | None:
    for name in ("status", "status_code", "http_status"):
        value = getattr(error, name, None)
        if isinstance(value, int):
            return value
    return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# -- when to give up ------------------------------------------------------------------------------

# Failures that no retry or later task will fix: the user must change a key, a plan or a model name.
_FATAL = ("LMAuthError", "LMBillingError", "LMUnsupportedModelError", "LMConfigurationError",
          "LMNotConfiguredError")
# Tasks in a row that failed after all their retries before a stage stops sending more.
STREAK_LIMIT = 3


def fatal_error(error: BaseException, model: str | None) -> LMUnavailableError | None:
    """A user error for failures that retrying cannot fix (a bad key, no credit, an unknown model)."""
    if type(error).__name__ in _FATAL or any(c.__name__ in _FATAL for c in type(error).__mro__):
        refused = ProviderError(f"{model or 'the LM'} refused the request ({type(error).__name__}: "
                                f"{provider_message(scrub(str(error)))}); fix the key, plan or model name, then run again")
        refused.detail = scrub(str(error))  # the provider's whole message, for synthboot-error.log
        return refused
    return None


class FailureStreak:
    """Counts LM failures in a row (each after its retries); `tripped` once STREAK_LIMIT is reached.

    A server that is down, refusing connections or failing every call should stop the run in
    seconds with a clear message, not retry every remaining task for minutes.
    """

    def __init__(self, stage: str, limit: int = STREAK_LIMIT):
        self.stage, self.limit = stage, limit
        self.count = 0
        self.last: BaseException | None = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        # Only what the server or the network did counts; an engine's own bug (LMUnexpectedError)
        # fails its task alone, as before.
        if not isinstance(error, (LMProviderError, LMTransportError)):
            return
        with self._lock:
            self.count += 1
            self.last = error

    def succeeded(self) -> None:
        with self._lock:
            self.count = 0

    @property
    def tripped(self) -> bool:
        return self.count >= self.limit

    def error(self, model: str | None, api_base: str | None = None) -> LMUnavailableError:
        where = f" at {api_base}" if api_base else ""
        last = f"{type(self.last).__name__}: {provider_message(scrub(str(self.last)))}" if self.last else "unknown error"
        stopped = ProviderError(f"{self.count} {self.stage} calls in a row to {model or 'the LM'}{where} failed after "
                                  f"their retries (last: {last}); stopped. Everything finished is in the store: "
                                  "run the same command again to resume")
        stopped.detail = scrub(str(self.last)) if self.last else None
        return stopped
