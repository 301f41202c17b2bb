"""LM backends. Every model is a `dspy.LM`; `make_lm` turns a spec's `lm:` string into one.

- `local` (default), `local/smollm2`, `local/gemma3-270m`, `local/qwen2.5-coder-1.5b`, or `local/PATH.gguf`: the embedded
  llama.cpp engine (`synthboot.lm.local`), offline.
- anything else: a DSPy model string (`openai/gpt-4o`, `anthropic/...`, `openai/NAME` with
  `api_base` for any OpenAI-compatible server); keys come from the environment as DSPy reads them.
- `mock`: a free mock provider in this process (`synthboot.mock_server`): schema-shaped word salad,
  to try a spec's plumbing without a model.
"""

from __future__ import annotations

import atexit
import os
import threading

import dspy

from synthboot.errors import LMUnavailableError
from synthboot.lm.limits import Limits, limited_lm
from synthboot.lm.local import DEFAULT_LOCAL, LlamaCppEngine

__all__ = ["make_lm", "is_local", "local_model_name", "MOCK"]

MOCK, MOCK_MODEL = "mock", "openai/synthboot-mock"  # `--lm mock` and the model name its calls are stored under

# One engine per local model per process: loading the weights is the expensive part.
_engines: dict[tuple[str, int], LlamaCppEngine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # Free the models while llama.cpp is still loaded; at interpreter teardown its bindings are gone.
    with _engines_lock:
        for engine in _engines.values():
            engine.close()


def is_local(name: str) -> bool:
    return name == "local" or name.startswith("local/")


def local_model_name(name: str) -> str:
    return name.partition("/")[2] or DEFAULT_LOCAL


def make_lm(name: str, *, api_base: str | None = None, temperature: float | None = None,
            max_tokens: int | None = None, instances: int = 2, num_retries: int = 3,
            limits: Limits | None = None) -> dspy.LM:
    """A DSPy LM for a spec's `lm:` value.

    With `limits`, a remote LM sends every attempt through a shared rate limiter with jittered
    retries (`synthboot.lm.limits`) instead of DSPy's own `num_retries`.
    """
    # LiteLLM otherwise fetches its price map from the internet at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if is_local(name):
        model = local_model_name(name)
        with _engines_lock:
            engine = _engines.get((model, instances))
            if engine is None:
                engine = _engines[(model, instances)] = LlamaCppEngine(model, instances=instances)
        return dspy.LM(f"local/{model}", engine=engine, temperature=temperature, max_tokens=max_tokens,
                       num_retries=0)
    if name == MOCK:
        from synthboot.mock_server import shared_server

        name, api_base = MOCK_MODEL, shared_server().base_url
    if "/" not in name:
        raise LMUnavailableError(f"lm {name!r} is not 'local' nor a DSPy model string like 'openai/gpt-4o-mini'")
    kwargs = {"api_base": api_base} if api_base else {}
    if api_base and name.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        # OpenAI-compatible local servers (llama.cpp, vLLM) take any key; LiteLLM insists on one.
        kwargs["api_key"] = "synthboot-local"
    try:
        if limits is not None:
            return limited_lm(name, limits=limits, temperature=temperature, max_tokens=max_tokens, **kwargs)
        return dspy.LM(name, temperature=temperature, max_tokens=max_tokens, num_retries=num_retries, **kwargs)
    except ValueError as exc:
        raise LMUnavailableError(f"cannot use lm {name!r}: {exc}") from None
