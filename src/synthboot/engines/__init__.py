"""Where the stages run: `local` (threads in this process) or `ray` (a Ray cluster).

An engine offers the stage functions with the signatures of `synthboot.stages.*`
(`run_generate`, `run_validate`, `run_dedup`, `run_verify`, `run_judge`). Whatever the engine, the run store stays
in the driver process and is the single source of truth: remote workers compute and return, the
driver writes.
"""

from __future__ import annotations

from synthboot.errors import SynthbootError
from synthboot.lm.limits import Limits

ENGINES = ("local", "ray")


def get_engine(name: str = "local", *, ray_address: str | None = None, limits: Limits | None = None):
    if name == "local":
        from synthboot.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from synthboot.engines.ray import RayEngine

        return RayEngine(address=ray_address, limits=limits or Limits())
    raise SynthbootError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
