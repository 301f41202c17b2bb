"""The command line: parse arguments, call the library, print. No pipeline logic lives here."""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from synthboot.errors import SynthbootError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Bootstrap vetted train/dev/test data for DSPy programs from a spec file.")
out = Console()
err = Console(stderr=True)


@app.command()
def run(spec: Path = typer.Argument(..., help="The spec file (YAML)."),
        out_dir: Path = typer.Option(..., "--out", help="The run directory (created, or resumed)."),
        lm: Optional[str] = typer.Option(None, help="Generator LM: 'local' or a DSPy model string."),
        api_base: Optional[str] = typer.Option(None, help="Base URL of an OpenAI-compatible server."),
        limit: Optional[int] = typer.Option(None, min=1, help="Cap the number of candidates generated."),
        concurrency: Optional[int] = typer.Option(None, min=1, help="Concurrent LM calls.")) -> None:
    """Run the pipeline (or resume it) and print the funnel."""
    from synthboot import pipeline
    from synthboot.progress import progress_printer
    from synthboot.render import print_status
    from synthboot.spec import load_spec
    from synthboot.status import run_status

    spec_obj = load_spec(spec)
    _context["run_dir"] = out_dir
    _context["resume"] = f"synthboot run {spec} --out {out_dir}" + (f" --limit {limit}" if limit else "")
    with progress_printer(err) as progress:
        result = pipeline.run(spec_obj, out_dir, lm=lm, api_base=api_base, limit=limit,
                              concurrency=concurrency, progress=progress)
    out.print(f"LM calls this run: {result.lm_calls_made} made, {result.lm_calls_cached} answered from the store")
    if result.generate.tasks_failed:
        err.print(f"[yellow]{result.generate.tasks_failed} generation task(s) failed; run again to retry them. "
                  f"First error: {result.generate.errors[0]}[/yellow]")
    print_status(out, run_status(out_dir))


@app.command()
def status(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Show a run's funnel, rejection reasons, splits, LM calls and diversity."""
    from synthboot.render import print_status
    from synthboot.status import run_status

    print_status(out, run_status(run_dir))


@app.command()
def export(run_dir: Path = typer.Argument(..., help="A run directory."),
           fmt: str = typer.Option("jsonl", "--format", help="jsonl, parquet or hf."),
           to: Optional[Path] = typer.Option(None, help="Target directory (default RUN_DIR/export/FORMAT).")) -> None:
    """Write the train/dev/test splits to files."""
    from synthboot.dataset import export as do_export

    for path in do_export(run_dir, fmt, to):  # type: ignore[arg-type]
        out.print(f"wrote {path}")


@app.command()
def init(path: Path = typer.Argument(Path("synthboot.yaml"), help="Where to write the example spec.")) -> None:
    """Write a commented example spec to start from."""
    from importlib.resources import files

    if path.exists():
        raise SynthbootError(f"{path} exists; choose another path")
    path.write_text(files("synthboot").joinpath("examples/python-qa.yaml").read_text(encoding="utf-8"))
    out.print(f"wrote {path}; edit it, then: synthboot run {path} --out runs/{path.stem}")


_context: dict[str, object] = {}


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors are one line and exit 2; bugs exit 1 with the traceback in a log file."""
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app(args=argv, standalone_mode=False)
        return 0
    except SynthbootError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        resume = _context.get("resume")
        err.print("stopped; everything finished so far is in the store" +
                  (f"; resume with: {resume}" if resume else ""), markup=False, highlight=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place bugs are caught
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        log = _write_traceback()
        err.print(f"internal error: {type(exc).__name__}: {exc} (traceback in {log})", markup=False, highlight=False)
        return 1


def _write_traceback() -> Path:
    run_dir = _context.get("run_dir")
    base = Path(str(run_dir)) if run_dir and Path(str(run_dir)).is_dir() else Path.cwd()
    log = base / "synthboot-error.log"
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc() + "\n")
    except OSError:
        log = Path("/dev/stderr")
        traceback.print_exc()
    return log


if __name__ == "__main__":
    sys.exit(main())
