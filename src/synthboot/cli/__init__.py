"""The command line: parse arguments, call the library, print. No pipeline logic lives here."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from synthboot.errors import SynthbootError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Bootstrap vetted train/dev/test data for DSPy programs from a spec file.")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from synthboot import __version__

        out.print(f"synthboot {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show DSPy, LiteLLM and tqdm output."),
             version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Bootstrap vetted train/dev/test data for DSPy programs from a spec file."""
    from synthboot.cli.output import set_verbosity

    set_verbosity(verbose)


@app.command()
def run(spec: Path = typer.Argument(..., help="The spec file (YAML)."),
        out_dir: Path = typer.Option(..., "--out", help="The run directory (created, or resumed)."),
        lm: Optional[str] = typer.Option(None, help="Generator LM: 'local', 'mock' (free, schema-shaped word "
                                                     "salad) or a DSPy model string."),
        api_base: Optional[str] = typer.Option(None, help="Base URL of an OpenAI-compatible server."),
        limit: Optional[int] = typer.Option(None, min=1, help="Cap the number of candidates generated."),
        concurrency: Optional[int] = typer.Option(None, min=1, max=256, help="Concurrent LM calls (1-256)."),
        rpm: Optional[float] = typer.Option(None, "--rpm", min=0.001, help="Requests per minute to a remote LM."),
        tpm: Optional[float] = typer.Option(None, "--tpm", min=1, help="Tokens per minute to a remote LM."),
        engine: str = typer.Option("local", help="Where stages run: local or ray."),
        ray_address: Optional[str] = typer.Option(
            None, help="Ray cluster address (e.g. ray://head:10001); default: a local cluster."),
        budget: Optional[str] = typer.Option(
            None, help="Stop cleanly when the run has spent this much in total: '$2' or '200k tokens'."),
        force: bool = typer.Option(False, "--force", help="Run into a directory holding a run of another task "
                                                          "or other fields (mixes the two)."),
        as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON (docs/json.md).")) -> None:
    """Run the pipeline (or resume it) and print the funnel."""
    from synthboot import pipeline
    from synthboot.cli.output import display, print_json, status_document
    from synthboot.cli.render import print_status
    from synthboot.loader import load_spec
    from synthboot.status import run_status

    from synthboot.cost import parse_budget

    spec_obj = load_spec(spec)
    budget_obj = parse_budget(budget) if budget else None
    _context["run_dir"] = out_dir
    # The command exactly as given (its --lm, --api-base, --limit...): running it again resumes.
    argv = _context.get("argv")
    _context["resume"] = ("synthboot " + shlex.join(map(str, argv)) if argv else
                          f"synthboot run {spec} --out {out_dir}" + (f" --limit {limit}" if limit else ""))
    with display(err) as progress:
        result = pipeline.run(spec_obj, out_dir, lm=lm, api_base=api_base, limit=limit,
                              concurrency=concurrency, progress=progress, engine=engine,
                              ray_address=ray_address, requests_per_minute=rpm, tokens_per_minute=tpm,
                              budget=budget_obj, force=force)
    status_now = run_status(out_dir)
    if as_json:
        print_json(out, "run", {"lm_calls_made": result.lm_calls_made, "lm_calls_cached": result.lm_calls_cached,
                                "status": status_document(status_now)})
    else:
        out.print(f"LM calls this run: {result.lm_calls_made} made, {result.lm_calls_cached} answered from the store")
        print_status(out, status_now)
    if result.generate.tasks_failed or status_now.funnel.pending:
        from synthboot.errors import RunIncompleteError

        first = f" (first error: {result.generate.errors[0]})" if result.generate.errors else ""
        raise RunIncompleteError(f"{result.generate.tasks_failed} generation task(s) failed after their retries and "
                                 f"{status_now.funnel.pending} candidate(s) are undecided{first}; everything else is "
                                 f"stored: resume with: {_context['resume']}")


@app.command()
def status(run_dir: Path = typer.Argument(..., help="A run directory."),
           as_json: bool = typer.Option(False, "--json", help="Print the status as JSON (docs/json.md).")) -> None:
    """Show a run's funnel, rejection reasons, splits, LM calls and diversity."""
    from synthboot.cli.render import print_status
    from synthboot.status import run_status

    if as_json:
        from synthboot.cli.output import print_json, status_document

        print_json(out, "status", status_document(run_status(run_dir)))
        return
    print_status(out, run_status(run_dir))


@app.command()
def export(run_dir: Path = typer.Argument(..., help="A run directory."),
           fmt: str = typer.Option("jsonl", "--format", help="jsonl, parquet or hf."),
           to: Optional[Path] = typer.Option(None, help="Target directory (default RUN_DIR/export/FORMAT).")) -> None:
    """Write the train/dev/test splits to files."""
    from synthboot.dataset import export as do_export
    from synthboot.store import lock_holder

    if (holder := lock_holder(run_dir)) is not None:
        err.print(f"warning: a run is in progress on {run_dir} ({holder}): the splits exported may be partial; "
                  "export again when it has finished", markup=False, highlight=False, soft_wrap=True)
    for path in do_export(run_dir, fmt, to):  # type: ignore[arg-type]
        out.print(f"wrote {path}")


@app.command()
def init(path: Path = typer.Argument(Path("synthboot.yaml"), help="Where to write the spec."),
         template: str = typer.Option("qa", help="qa, classification, extraction, math or rag."),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write a commented spec to start from (missing folders are created)."""
    from synthboot.templates import write_template

    write_template(template, path, force=force)
    out.print(f"wrote {path} (template {template}); edit it, then: synthboot estimate {path} && "
              f"synthboot run {path} --out runs/{path.stem} --limit 20", highlight=False, soft_wrap=True)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory."),
           to: Optional[Path] = typer.Option(None, help="The HTML file to write (default RUN_DIR/report.html)."),
           open_browser: bool = typer.Option(False, "--open", help="Open the report in a web browser.")) -> None:
    """Write a self-contained HTML report of a run: funnel, distributions, map, duplicates, costs."""
    from synthboot.cli.output import display
    from synthboot.report import write_report

    with display(err) as progress:
        path = write_report(run_dir, to, progress=progress)
    out.print(f"wrote {path}")
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@app.command()
def estimate(spec: Path = typer.Argument(..., help="The spec file (YAML)."),
             limit: Optional[int] = typer.Option(None, min=1, help="Cap the number of candidates generated."),
             lm: Optional[str] = typer.Option(None, help="Generator LM: 'local' or a DSPy model string."),
             measured: Optional[Path] = typer.Option(
                 None, "--from", help="A run directory whose stored calls give measured token sizes."),
             as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON (docs/json.md).")) -> None:
    """Print the expected LM calls, tokens, cost and wall time of a run before starting it."""
    from synthboot.estimate import estimate_run, print_estimate
    from synthboot.loader import load_spec

    est = estimate_run(load_spec(spec), limit=limit, lm=lm, measured_from=measured)
    if as_json:
        from synthboot.cli.output import print_json

        print_json(out, "estimate", {"calls": est.calls, "tokens": est.tokens, "max_tokens": est.max_tokens,
                                     "cost": est.cost, "wall_seconds": round(est.wall_seconds, 1),
                                     "stages": est.stages, "notes": est.notes})
        return
    print_estimate(out, est)


@app.command()
def review(run_dir: Path = typer.Argument(..., help="A run directory."),
           port: int = typer.Option(8765, min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
           reviewer: Optional[str] = typer.Option(None, help="Your name, stored with each decision "
                                                              "(default: the login name)."),
           open_browser: bool = typer.Option(False, "--open", help="Open the page in a web browser.")) -> None:
    """Serve the review page on 127.0.0.1: page through candidates, accept, reject or edit them."""
    import time

    from synthboot.report.review_app import serve

    with serve(run_dir, port=port, reviewer=reviewer) as url:
        out.print(f"reviewing {run_dir} at {url} (Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        while True:
            time.sleep(3600)


@app.command()
def optimize(run_dir: Path = typer.Argument(..., help="A finished run directory."),
             program: Optional[str] = typer.Option(None, help="A DSPy signature ('question -> answer') or "
                                                             "module:attribute naming a dspy.Module, or 'rag' "
                                                             "(retrieve from the run's chunks, then answer) "
                                                             "(default: the task's inputs -> outputs)."),
             module: str = typer.Option("cot", help="predict or cot: the module a signature is wrapped in."),
             optimizer: str = typer.Option("bootstrap", help="bootstrap, random_search, mipro or gepa (DSPy's)."),
             auto: Optional[str] = typer.Option(None, help="light, medium or heavy (mipro, gepa)."),
             settings: list[str] = typer.Option([], "--set", help="KEY=VALUE passed to the optimizer "
                                                                    "(constructor or compile); repeatable."),
             metric: Optional[str] = typer.Option(None, help="exact_match, token_f1, embedding, semantic_f1 or "
                                                           "module:function (default: exact_match for enum "
                                                           "outputs, else semantic_f1)."),
             threshold: float = typer.Option(0.5, help="Score counted as a pass (demos, failures)."),
             lm: str = typer.Option("local", help="Student LM: 'local' or a DSPy model string."),
             api_base: Optional[str] = typer.Option(None, help="Base URL of the student's OpenAI-compatible server."),
             judge_lm: Optional[str] = typer.Option(None, help="Judge for semantic_f1, GEPA's reflection and MIPROv2's "
                                                             "prompt model (default: the spec's judge, else its "
                                                             "generator; for MIPROv2 the student)."),
             adapter: Optional[str] = typer.Option(None, help="json or chat (default: json for the embedded model)."),
             num_threads: int = typer.Option(2, min=1, help="Parallel evaluation threads."),
             test: Optional[Path] = typer.Option(None, "--test", help="JSONL of real labeled examples: "
                                                                     "the held-out real test set.")) -> None:
    """Optimize a DSPy program on the run's train/dev splits and score it on test."""
    from synthboot.optimize import OptimizeSettings, run_optimize
    from synthboot.optimize.programs import parse_settings
    from synthboot.cli.render_optimize import print_optimize

    _context["run_dir"] = run_dir
    chosen = OptimizeSettings(program=program, module=module, optimizer=optimizer,
                              optimizer_settings=parse_settings(settings, auto), metric=metric,
                              threshold=threshold, lm=lm, api_base=api_base, judge_lm=judge_lm, adapter=adapter,
                              num_threads=num_threads, test_file=str(test) if test else None)
    from synthboot.cli.output import display, library_prints

    with display(err) as shown, library_prints():
        report = run_optimize(run_dir, chosen, progress=shown.note, counts=shown)
    print_optimize(out, report)


@app.command()
def grow(run_dir: Path = typer.Argument(..., help="A run directory with an optimize run."),
         rounds: int = typer.Option(1, min=1, help="Growth rounds."),
         per_round: Optional[int] = typer.Option(None, min=1, help="New examples asked for per round "
                                                                   "(default: twice the dev failures).")) -> None:
    """Generate examples aimed at the optimized program's dev failures, filter them, re-optimize."""
    from synthboot.optimize.grow import run_grow
    from synthboot.cli.render_optimize import print_optimize, print_rounds

    _context["run_dir"] = run_dir
    from synthboot.cli.output import display, library_prints

    with display(err) as shown, library_prints():
        result = run_grow(run_dir, rounds=rounds, per_round=per_round, progress=shown.note, counts=shown)
    for r in result.rounds:
        out.print(f"round {r.round}: {r.failures} dev failures, asked {r.asked}, generated {r.generated}, "
                  f"added {r.added or 'none'}" + (f", {r.test_near_duplicates} near test items!"
                                                   if r.test_near_duplicates else ""), highlight=False)
    reports = [result.baseline] + [r.report for r in result.rounds if r.report]
    if len(reports) > 1:
        print_optimize(out, reports[-1])
    print_rounds(out, reports, {r.round: sum(r.added.values()) for r in result.rounds})
    if result.stopped:
        out.print(f"stopped: {result.stopped}", highlight=False)


@app.command(name="mock-server")
def mock_server(port: int = typer.Option(8765, min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
                delay: float = typer.Option(0.0, min=0.0, help="Seconds before every reply."),
                script: Optional[str] = typer.Option(None, help="Comma-separated faults for the first requests "
                                                                "(429, 500, hang, close, ...).")) -> None:
    """Serve a free mock LM (OpenAI-compatible) that answers schema-shaped examples, to try a spec's plumbing."""
    from synthboot.mock_server import run_forever

    def started(url: str) -> None:
        out.print(f"mock LM at {url} (Ctrl-C to stop); try: synthboot run SPEC --out DIR --lm openai/mock "
                  f"--api-base {url}", highlight=False, soft_wrap=True)

    run_forever(port, delay, [s.strip() for s in (script or "").split(",") if s.strip()], on_start=started)


@app.command(name="import")
def import_(run_dir: Path = typer.Argument(..., help="A run directory."),
            file: Path = typer.Argument(..., help="JSONL of real, human-labeled examples with the spec's fields."),
            split: str = typer.Option(..., "--as", help="test, train or dev.")) -> None:
    """Add real examples to a run (provenance 'human'); their split is frozen."""
    from synthboot.importing import import_examples
    from synthboot.store import Store

    with Store(run_dir, lock=True) as store:
        result = import_examples(store, store.spec(), file, split)
    out.print(f"imported {result.rows} examples into {split} ({result.added} new, provenance 'human')",
              highlight=False)
    if result.overlaps:
        err.print(f"warning: {len(result.overlaps)} imported examples nearly repeat examples in other splits "
                  f"(first: candidate {result.overlaps[0][0]} ~ {result.overlaps[0][1]} in "
                  f"{result.overlaps[0][2]})", highlight=False, markup=False)


@app.command()
def check(run_dir: Path = typer.Argument(..., help="A run directory."),
          real: Path = typer.Option(..., "--real", help="JSONL of real labelled examples in the spec's fields."),
          k: int = typer.Option(5, min=1, help="Neighbours that set each real example's radius (coverage, "
                                              "precision)."),
          embedder: str = typer.Option("local", help="Embedder: local, static or a model directory.")) -> None:
    """Measure the kept examples against real data: coverage, precision, accuracy on real, label fidelity."""
    from synthboot.check import check_run

    _context["run_dir"] = run_dir
    result = check_run(run_dir, real, k=k, embedder=embedder)
    out.print(f"check of {run_dir} against {real}", highlight=False, markup=False, soft_wrap=True)
    for line in result.lines():
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def dedup(file: Path = typer.Argument(..., help="A JSONL file (.jsonl or .jsonl.gz)."),
          field: list[str] = typer.Option(..., "--field", help="The field to compare (repeat for several)."),
          out_file: Path = typer.Option(..., "--out", help="Where to write the kept rows (JSONL)."),
          method: Optional[str] = typer.Option(
              None, help="exact, minhash, semantic or word_overlap; comma-separated for layers in order "
                         "(default: exact,minhash,semantic)."),
          threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                                    help="Similarity threshold for every layer not set below."),
          minhash_threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Jaccard threshold (minhash)."),
          semantic_threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                                             help="Cosine threshold (semantic)."),
          word_overlap_threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                                                 help="Word-overlap threshold (word_overlap)."),
          match_fields: str = typer.Option("joined", help="With several --field: 'joined' compares them as one "
                                                          "text; 'each' needs every field to match on its own."),
          pairs: Optional[Path] = typer.Option(None, help="Write the duplicate pairs with their scores here (JSONL)."),
          embedder: Optional[str] = typer.Option(None, help="Embedder for semantic: static (the default here: "
                                                             "fast), local (MiniLM: accurate, slow) or a model directory."),
          as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON (docs/json.md).")
          ) -> None:
    """Remove duplicate rows from any JSONL file and print the counts."""
    from synthboot.dedup.file import dedup_file
    from synthboot.progress import progress_printer

    with progress_printer(err) as progress:
        result = dedup_file(file, field, out_file, methods=method, threshold=threshold, pairs=pairs,
                            embedder=embedder, thresholds={"minhash": minhash_threshold, "semantic": semantic_threshold,
                                                           "word_overlap": word_overlap_threshold},
                            match=match_fields, on_progress=progress)
    if as_json:
        from synthboot.cli.output import print_json

        print_json(out, "dedup", {"rows": result.rows, "kept": result.kept, "removed": result.removed,
                                  "empty": result.empty, "missing": result.missing,
                                  "seconds": round(result.seconds, 3), "out": str(out_file),
                                  "pairs": str(pairs) if pairs else None})
        return
    removed = ", ".join(f"{layer} {n}" for layer, n in result.removed.most_common()) or "none"
    missing = f"; {result.missing} without {', '.join(field)} (kept, not compared)" if result.missing else ""
    out.print(f"{result.rows} rows, {result.kept} kept, {result.rows - result.kept} removed ({removed}){missing} "
              f"in {result.seconds:.1f}s; wrote {out_file}" + (f" and {pairs}" if pairs else ""), highlight=False,
              soft_wrap=True)


_context: dict[str, Any] = {}


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors are one line and exit 2; bugs exit 1 with the traceback in a log file."""
    signal.signal(signal.SIGTERM, _sigterm)
    _context.clear()  # a previous call's run directory must not receive this call's error log
    _context["argv"] = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:
            # Click 8.2+ turns Ctrl-C (and our SIGTERM) into exit code 130 instead of raising it.
            raise KeyboardInterrupt
        return code if isinstance(code, int) else 0
    except SynthbootError as exc:
        from synthboot.messages import one_line
        from synthboot.secrets import scrub

        line = one_line(str(exc))
        if exc.detail or line != " ".join(str(exc).split()):
            # The line is shortened: the whole message goes to the log (scrubbed; never the raw chain
            # of library exceptions, which may quote a key).
            _write_traceback(scrub(str(exc) + (f"\ndetail: {exc.detail}" if exc.detail else "")))
        # soft_wrap: one line whatever the terminal width (scripts and tests read it as one line).
        err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        resume = _context.get("resume")
        err.print("stopped; everything finished so far is in the store" +
                  (f"; resume with: {resume}" if resume else ""), markup=False, highlight=False, soft_wrap=True)
        if argv is None:
            # The program itself (not a caller in Python): exit now rather than join worker threads
            # still waiting on an LM call; the store is already closed and consistent.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except typer.TyperException as exc:  # a bad argument: typer shows it with the usage line, exit 2
        exc.show()  # type: ignore[attr-defined]  # what typer raises is its click exception, which has show()
        return getattr(exc, "exit_code", 2)
    except Exception as exc:  # noqa: BLE001 - the one place bugs are caught
        from synthboot.messages import one_line

        log = _write_traceback()
        err.print(f"internal error: {type(exc).__name__}: {one_line(str(exc), 300)} (traceback in {log})",
                  markup=False, highlight=False, soft_wrap=True)
        return 1


def _write_traceback(text: str | None = None) -> Path:
    """Append `text` (default: the current traceback) to synthboot-error.log in the run directory or cwd."""
    run_dir = _context.get("run_dir")
    base = Path(str(run_dir)) if run_dir and Path(str(run_dir)).is_dir() else Path.cwd()
    log = base / "synthboot-error.log"
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write((text if text is not None else traceback.format_exc()) + "\n")
    except OSError:
        log = Path("/dev/stderr")
        traceback.print_exc()
    return log

