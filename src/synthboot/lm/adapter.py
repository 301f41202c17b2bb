"""DSPy's JSONAdapter, with the parts that depend only on the signature computed once per signature.

On every call DSPy's JSONAdapter rebuilds the signature's JSON schema twice with pydantic: once for
the system message's field structure, once for the `response_format` it sends (a new pydantic model
each time). For a stage that makes thousands of calls with one signature that was about 40% of
the client's CPU per call (profiled against a loopback server, bench/latency.py), and the client's
CPU is what bounds throughput when many calls wait on a remote LM at once. Both are pure functions
of the signature class (signatures are immutable; `with_instructions` and optimizers make new
classes), so they are kept per class, weakly, and the prompts and requests are byte-for-byte the
same as DSPy's.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import dspy

__all__ = ["CachingJSONAdapter", "JSON_ADAPTER"]

_ABSENT = object()


class CachingJSONAdapter(dspy.JSONAdapter):
    """`dspy.JSONAdapter` that builds each signature's field structure and response format once."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._structures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._formats: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # WeakKeyDictionary is not safe to grow from many threads

    def format_field_structure(self, signature: type[dspy.Signature]) -> str:
        with self._lock:
            text = self._structures.get(signature)
        if text is None:
            text = super().format_field_structure(signature)
            with self._lock:
                self._structures[signature] = text
        return text

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: type[dspy.Signature]) -> None:
        # What DSPy chooses depends on the signature and on two capabilities of the LM; ask the LM
        # every time (as DSPy does), and build the schema only the first time for each answer.
        capabilities = ("response_format" in lm.supported_params, bool(lm.supports_response_schema))
        with self._lock:
            chosen = self._formats.get(signature, {}).get(capabilities)
        if chosen is None:
            probe: dict[str, Any] = {}
            super()._prepare_response_format(lm, probe, signature)
            chosen = probe.get("response_format", _ABSENT)
            with self._lock:
                self._formats.setdefault(signature, {})[capabilities] = chosen
        if chosen is not _ABSENT:
            # A dict is copied, so a caller that edits its kwargs cannot change the next call's.
            lm_kwargs["response_format"] = dict(chosen) if isinstance(chosen, dict) else chosen


# One per process: every stage's calls share the per-signature work.
JSON_ADAPTER = CachingJSONAdapter()
