"""synthboot: bootstrap vetted train/dev/test data for DSPy programs.

    import synthboot
    spec = synthboot.load_spec("examples/python-qa.yaml")
    synthboot.run(spec, out="runs/python-qa", limit=40)
    trainset = synthboot.load_split("runs/python-qa", "train")   # list[dspy.Example]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthboot.errors import SpecError, SynthbootError
from synthboot.spec import Spec, load_spec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "Spec",
    "SpecError",
    "SynthbootError",
    "export",
    "load_spec",
    "load_split",
    "parse_spec",
    "run",
    "status",
]


def run(spec: Spec | str | Path, out: str | Path, **kwargs: Any):
    """Run or resume the pipeline; `spec` is a Spec or a path to a YAML spec. See `pipeline.run`."""
    from synthboot.pipeline import run as _run

    return _run(spec if isinstance(spec, Spec) else load_spec(spec), out, **kwargs)


def load_split(run_dir: str | Path, split: str) -> list:
    """A split ('train', 'dev' or 'test') as `dspy.Example`s with inputs set."""
    from synthboot.dataset import load_split as _load_split

    return _load_split(run_dir, split)


def status(run_dir: str | Path):
    """The run's funnel, calls and diversity (a `RunStatus`)."""
    from synthboot.status import run_status

    return run_status(run_dir)


def export(run_dir: str | Path, fmt: str = "jsonl", to: str | Path | None = None) -> list[Path]:
    """Write the splits as jsonl, parquet or a Hugging Face dataset."""
    from synthboot.dataset import export as _export

    return _export(run_dir, fmt, to)  # type: ignore[arg-type]
