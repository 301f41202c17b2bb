"""Terminal tables for the optimize loop: scores with intervals, gains, calls per phase, rounds."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from synthboot.optimize import OptimizeReport, Score

SPLIT_LABELS = {"dev": "dev (synthetic)", "test": "test (synthetic)", "real_test": "test (real, human)"}


def _pct(score: Score | None, signed: bool = False) -> str:
    if score is None:
        return "-"
    sign = "+" if signed else ""
    return f"{score.mean * 100:{sign}.1f} [{score.low * 100:.1f}, {score.high * 100:.1f}]"


def print_optimize(console: Console, report: OptimizeReport) -> None:
    s = report.settings
    scores = Table(title=f"optimize: {s['program']} ({s['module']}), {s['optimizer']}, metric {s['metric']}, "
                         f"student {s['lm']} (round {report.round})", show_header=True)
    for col in ("split", "n", "baseline", "optimized", "gain [95% CI]"):
        scores.add_column(col, justify="left" if col == "split" else "right")
    for split, label in SPLIT_LABELS.items():
        base, opt = report.scores.get((split, "baseline")), report.scores.get((split, "optimized"))
        if base is None and opt is None:
            continue
        gain = report.scores.get((split, "gain"))
        scores.add_row(label, str((base or opt).n), _pct(base), _pct(opt), _pct(gain, signed=True))
    console.print(scores)
    console.print("scores are % with 95% bootstrap intervals; a gain whose interval spans 0 may be noise. "
                  "Test rows were scored only after compiling.", highlight=False)
    phases = Table(title="LM calls per phase", show_header=True)
    for col in ("phase", "calls", "made now", "prompt tokens", "completion tokens", "seconds"):
        phases.add_column(col, justify="left" if col == "phase" else "right")
    for p in report.phases:
        phases.add_row(p.phase, str(p.calls), str(p.calls_made), str(p.prompt_tokens), str(p.completion_tokens),
                       f"{p.seconds:.1f}")
    console.print(phases)
    if report.program_path:
        console.print(f"optimized program: {report.program_path}", highlight=False)


def print_rounds(console: Console, reports: list[OptimizeReport], added: dict[int, int] | None = None) -> None:
    """Round over round: data size, dev and test scores of each growth round's optimized program."""
    table = Table(title="growth rounds", show_header=True)
    for col in ("round", "train", "dev", "added", "dev baseline", "dev optimized", "test optimized",
                "real test optimized", "calls made"):
        table.add_column(col, justify="right")
    for r in reports:
        data = r.settings.get("data", {})
        table.add_row(str(r.round), str(len(data.get("train", []))), str(len(data.get("dev", []))),
                      str((added or {}).get(r.round, "-")), _pct(r.scores.get(("dev", "baseline"))),
                      _pct(r.scores.get(("dev", "optimized"))), _pct(r.scores.get(("test", "optimized"))),
                      _pct(r.scores.get(("real_test", "optimized"))), str(sum(p.calls_made for p in r.phases)))
    console.print(table)
