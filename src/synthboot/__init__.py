"""synthboot: bootstrap vetted train/dev/test data for DSPy programs.

    import synthboot
    spec = synthboot.load_spec("examples/python-qa.yaml")
    synthboot.run(spec, out="runs/python-qa", limit=40)
    trainset = synthboot.load_split("runs/python-qa", "train")   # list[dspy.Example]
"""

from pathlib import Path as _Path
from typing import Any as _Any

from synthboot.errors import SpecError, SynthbootError
from synthboot.loader import load_spec, parse_spec
from synthboot.spec import Spec

__version__ = "0.1.0"

__all__ = [
    "Spec",
    "SpecError",
    "SynthbootError",
    "check_run",
    "export",
    "load_spec",
    "load_split",
    "parse_spec",
    "run",
    "run_status",
]


def run(spec: Spec | str | _Path, out: str | _Path, **kwargs: _Any):
    """Run or resume the pipeline; `spec` is a Spec or a path to a YAML spec. See `pipeline.run`."""
    from synthboot.pipeline import run as _run

    return _run(spec if isinstance(spec, Spec) else load_spec(spec), out, **kwargs)


def load_split(run_dir: str | _Path, split: str) -> list:
    """A split ('train', 'dev' or 'test') as `dspy.Example`s with inputs set."""
    from synthboot.dataset import load_split as _load_split

    return _load_split(run_dir, split)


def run_status(run_dir: str | _Path):
    """The run's funnel, calls and diversity (a `RunStatus`).

    (Not `status`: that name is the `synthboot.status` module, which would shadow it on import.)
    """
    from synthboot.status import run_status as _run_status

    return _run_status(run_dir)


def export(run_dir: str | _Path, fmt: str = "jsonl", to: str | _Path | None = None) -> list[_Path]:
    """Write the splits as jsonl, parquet or a Hugging Face dataset."""
    from synthboot.dataset import export as _export

    return _export(run_dir, fmt, to)  # type: ignore[arg-type]


def check_run(run_dir: str | _Path, real_file: str | _Path, **kwargs: _Any):
    """Measure the run's kept examples against real labelled rows (a `CheckResult`). See `check.check_run`.

    (Not `check`: that name is the `synthboot.check` module.)
    """
    from synthboot.check import check_run as _check_run

    return _check_run(run_dir, real_file, **kwargs)
