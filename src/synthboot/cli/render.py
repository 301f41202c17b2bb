"""Terminal rendering of a run's status with rich tables."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from synthboot.status import CallStats, RunStatus


def cost_text(calls: CallStats) -> str:
    """'$0.0123', or 'unknown' when some call's model has no known price (never a made-up $0)."""
    if not calls.unpriced:
        return f"${calls.cost:.4f}"
    priced = f", ${calls.cost:.4f} for the rest" if calls.unpriced < calls.calls else ""
    return f"unknown ({calls.unpriced} calls to a model without a known price{priced})"


def print_status(console: Console, status: RunStatus) -> None:
    f = status.funnel
    funnel = Table(title=f"synthboot run {status.run_dir}", show_header=True)
    funnel.add_column("stage")
    funnel.add_column("count", justify="right")
    judged = status.spec is not None and status.spec.judge.enabled  # no "judged ok" row when no judge ran
    rows = [("generated", f.generated), ("parsed", f.parsed), ("schema-valid", f.schema_valid),
            ("rule-valid", f.rule_valid)]
    rows += [("grounded", f.grounded)] if status.coverage is not None else []
    rows += [("unique", f.unique), ("verified", f.verified)]
    rows += [("judged ok", f.judged_ok)] if judged else []
    for label, value in rows + [("kept", f.kept)]:
        funnel.add_row(label, str(value))
    if status.running:
        funnel.add_row(f"running ({status.running})", str(f.pending))
    elif f.pending:
        funnel.add_row("pending (run again)", str(f.pending))
    console.print(funnel)

    if f.rejected:
        reasons = Table(title="rejections", show_header=True)
        for col in ("stage", "reason", "count"):
            reasons.add_column(col, justify="right" if col == "count" else "left")
        for stage, counts in f.rejected.items():
            for reason, n in counts.most_common():
                reasons.add_row(stage, reason, str(n))
        console.print(reasons)

    if status.coverage is not None:
        from synthboot.coverage import coverage_line

        console.print(coverage_line(status.coverage), highlight=False)
    if status.verify_agreement:
        console.print("verify agreement: " + "; ".join(
            f"{a.field} {a.agreed}/{a.compared} ({a.rate:.0%}, {a.match})" for a in status.verify_agreement),
            highlight=False)
    for rule, (count, message) in status.rule_errors.items():
        console.print(f"[red]RULE ERROR:[/red] rule {rule!r} raised on {count} candidate(s): {escape(message)}",
                      highlight=False)
    if status.dedup_by_layer:
        console.print("dedup removals by layer: " + ", ".join(f"{k} {v}" for k, v in status.dedup_by_layer.items()),
                      highlight=False)
    if status.topup:
        from synthboot.topup import TopUpResult

        t = TopUpResult(**status.topup)
        console.print(t.summary() if t.reached else f"[yellow]{t.summary()}[/yellow]", highlight=False)

    if status.subtopics:
        console.print(f"topics proposed by the LM ({len(status.subtopics)}; to edit them, list them as `topics:` in "
                      "the spec): " + "; ".join(status.subtopics), highlight=False)

    splits = Table(title="splits", show_header=True)
    for name in ("train", "dev", "test"):
        splits.add_column(name, justify="right")
    splits.add_row(*(str(f.splits.get(name, 0)) for name in ("train", "dev", "test")))
    console.print(splits)
    for warning in status.split_warnings:
        console.print(f"[yellow]WARNING:[/yellow] {escape(warning)}", highlight=False)

    c = status.calls
    console.print(f"LM calls stored: {c.calls} ({', '.join(f'{k} {v}' for k, v in c.by_purpose.items()) or 'none'}); "
                  f"tokens: {c.prompt_tokens} prompt + {c.completion_tokens} completion; "
                  f"LM time {c.latency_s:.1f}s; cost {cost_text(c)}; failed calls {c.failures}"
                  + (f"; retried attempts {c.retried_attempts}" if c.retried_attempts else "")
                  + (f"; failed generation tasks {status.tasks_failed}" if status.tasks_failed else ""),
                  highlight=False)

    d = status.diversity
    if d is not None:
        for name, dist in d.distributions.items():
            table = Table(title=f"{name} distribution (kept)", show_header=True)
            table.add_column(name, max_width=40, overflow="ellipsis", no_wrap=True)  # a topic can be long
            table.add_column("count", justify="right")
            table.add_column("share", justify="right")
            target = d.targets.get(name, {})
            if target:
                table.add_column("target", justify="right")
            for label, n in dist.items():
                row = [label, str(n), f"{n / d.total:.0%}" if d.total else "-"]
                if target:
                    row.append(f"{target.get(label, 0):.0%}")
                table.add_row(*row)
            console.print(table)
        metrics = [f"{k} {v:.2f}" for k, v in d.distinct.items()]
        metrics += [f"entropy({k}) {v:.2f}" for k, v in d.entropy.items()]
        metrics += [f"off-target({k}) {v:.0%}" for k, v in d.divergence.items()]
        if d.nn_distance is not None:
            metrics.append(f"mean nearest-neighbour cosine distance {d.nn_distance:.3f}")
        if d.near_seed_rate is not None:
            metrics.append(f"near-seed rate {d.near_seed_rate:.0%} (mean best cosine to a seed {d.seed_similarity:.2f})")
        if metrics:
            console.print("diversity: " + "; ".join(metrics), highlight=False)
        for warning in d.warnings:
            console.print(f"[yellow]WARNING:[/yellow] {warning}")

    if status.optimization:
        from synthboot.cli.render_optimize import print_optimize, print_rounds

        print_optimize(console, status.optimization[-1])
        if len({r.round for r in status.optimization}) > 1:
            print_rounds(console, status.optimization, title="optimize runs")
