"""Terminal tables for the optimize loop: scores with intervals, gains, calls per phase, rounds."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from synthboot.optimize_reports import OptimizeReport, Score

SPLIT_LABELS = {"dev": "dev", "test": "test", "real_test": "real test"}  # real: human-labeled rows


def _pct(score: Score | None, signed: bool = False) -> str:
    if score is None:
        return "-"
    sign = "+" if signed else ""
    return f"{score.mean * 100:{sign}.1f} [{score.low * 100:.1f},{score.high * 100:.1f}]"


def print_optimize(console: Console, report: OptimizeReport) -> None:
    s = report.settings
    scores = Table(title=f"optimize: {s['program']} ({s['module']}), {s['optimizer']}, metric {s['metric']}, "
                         f"student {s['lm']} (round {report.round})", show_header=True)
    for col in ("split", "n", "baseline", "optimized", "gain [95% CI]"):
        scores.add_column(col, justify="left" if col == "split" else "right", no_wrap=True)
    for split, label in SPLIT_LABELS.items():
        base, opt = report.scores.get((split, "baseline")), report.scores.get((split, "optimized"))
        if base is None and opt is None:
            continue
        gain = report.scores.get((split, "gain"))
        scores.add_row(label, str(next(s for s in (base, opt) if s is not None).n), _pct(base), _pct(opt), _pct(gain, signed=True))
    console.print(scores)
    console.print("scores are % with 95% bootstrap intervals; a gain whose interval spans 0 may be noise. "
                  "Test rows were scored only after compiling.", highlight=False)
    recall = [(label, report.scores[split, "retrieval_recall"]) for split, label in SPLIT_LABELS.items()
              if (split, "retrieval_recall") in report.scores]
    if recall:
        console.print("retrieval recall of the gold chunk: " + ", ".join(f"{label} {_pct(s)} (n={s.n})"
                                                                        for label, s in recall), highlight=False)
    phases = Table(title="LM calls per phase", show_header=True)
    for col in ("phase", "calls", "made now", "prompt tokens", "completion tokens", "seconds"):
        phases.add_column(col, justify="left" if col == "phase" else "right")
    for p in report.phases:
        phases.add_row(p.phase, str(p.calls), str(p.calls_made), str(p.prompt_tokens), str(p.completion_tokens),
                       f"{p.seconds:.1f}")
    console.print(phases)
    if report.program_path:
        console.print(f"optimized program (in the run directory): {report.program_path}", highlight=False)


def print_rounds(console: Console, reports: list[OptimizeReport], added: dict[int, int] | None = None,
                 title: str = "growth rounds") -> None:
    """Round over round: data size and the mean scores (%) of each round's baseline -> optimized program."""
    table = Table(title=f"{title} (mean %, baseline→optimized)", show_header=True)
    for col in ("round", "train/dev/test", "new", "dev", "test", "real test", "calls"):
        table.add_column(col, justify="right", no_wrap=True)

    def change(report: OptimizeReport, split: str) -> str:
        base, opt = report.scores.get((split, "baseline")), report.scores.get((split, "optimized"))
        return "-" if base is None or opt is None else f"{base.mean * 100:.1f}→{opt.mean * 100:.1f}"

    for r in reports:
        test = r.scores.get(("test", "optimized"))
        data = r.settings.get("data", {})
        table.add_row(str(r.round), f"{len(data.get('train', []))}/{len(data.get('dev', []))}/{test.n if test else 0}",
                      str((added or {}).get(r.round, "-")), change(r, "dev"), change(r, "test"),
                      change(r, "real_test"), str(sum(p.calls_made for p in r.phases)))
    console.print(table)
