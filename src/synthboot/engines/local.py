"""The local engine: each stage as written, LM calls on a thread pool in this process."""

from __future__ import annotations

from synthboot.lm import make_lm
from synthboot.stages.dedup import run_dedup
from synthboot.stages.generate import run_generate
from synthboot.stages.judge import run_judge
from synthboot.stages.validate import run_validate
from synthboot.stages.verify import run_verify


class LocalEngine:
    name = "local"
    make_lm = staticmethod(make_lm)
    run_generate = staticmethod(run_generate)
    run_validate = staticmethod(run_validate)
    run_dedup = staticmethod(run_dedup)
    run_verify = staticmethod(run_verify)
    run_judge = staticmethod(run_judge)
