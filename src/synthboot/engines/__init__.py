"""Where the stages run: `local` (threads in this process) or `ray` (a Ray cluster).

An engine (`Engine`) offers the stage functions with the signatures of `synthboot.stages.*`
(`run_generate`, `run_validate`, `run_dedup`, `run_verify`, `run_judge`) and `make_lm`. Whatever the
engine, the run store stays in the driver process and is the single source of truth: remote workers
compute and return, the driver writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from synthboot.errors import SynthbootError
from synthboot.lm.limits import Limits

if TYPE_CHECKING:  # the stages import DSPy; naming their types here loads nothing
    import dspy

    from synthboot.spec import Spec
    from synthboot.stages import StageResult
    from synthboot.stages.generate import GenerateResult, GenerationTask
    from synthboot.store import Store

ENGINES = ("local", "ray")

Progress = Callable[[int, int], None]
Stop = Callable[[], bool]


class Engine(Protocol):
    """What the pipeline uses from an engine."""

    name: str

    def make_lm(self, name: str, *, api_base: str | None = None, temperature: float | None = None,
                max_tokens: int | None = None, instances: int = 2, limits: Limits | None = None) -> dspy.LM: ...

    def run_generate(self, store: Store, spec: Spec, lm: dspy.LM, tasks: list[GenerationTask], *,
                     concurrency: int = 1, on_progress: Progress | None = None,
                     should_stop: Stop | None = None) -> GenerateResult: ...

    def run_validate(self, store: Store, spec: Spec, upstream_hash: str = "") -> StageResult: ...

    def run_dedup(self, store: Store, spec: Spec, upstream_hash: str, *,
                  on_progress: Progress | None = None) -> StageResult: ...

    def run_verify(self, store: Store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, *, concurrency: int = 1,
                   on_progress: Progress | None = None, should_stop: Stop | None = None) -> StageResult: ...

    def run_judge(self, store: Store, spec: Spec, lm: dspy.LM | None, upstream_hash: str, *, concurrency: int = 1,
                  on_progress: Progress | None = None, should_stop: Stop | None = None) -> StageResult: ...


def get_engine(name: str = "local", *, ray_address: str | None = None, limits: Limits | None = None) -> Engine:
    if name == "local":
        from synthboot.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from synthboot.engines.ray import RayEngine

        return RayEngine(address=ray_address, limits=limits or Limits())
    raise SynthbootError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
