"""HTML tables for Jupyter: `RunStatus` and `OptimizeReport` define `_repr_html_` with these.

Every value is escaped: candidates' reasons and topics are LM or user text.
"""

from __future__ import annotations

from html import escape
from typing import Any


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><caption>{escape(title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def status_html(status: Any) -> str:
    """A run's funnel, rejections, splits and calls as HTML tables."""
    f = status.funnel
    judge_on = bool(status.spec and status.spec.judge.enabled)
    funnel = [["generated", f.generated], ["parsed", f.parsed], ["schema-valid", f.schema_valid],
              ["rule-valid", f.rule_valid], ["unique", f.unique], ["verified", f.verified]]
    if judge_on:
        funnel.append(["judged ok", f.judged_ok])
    funnel.append(["kept", f.kept])
    if f.pending:
        funnel.append(["pending (run again)", f.pending])
    parts = [_table(f"synthboot run {status.run_dir}", ["stage", "count"], funnel)]
    rejected = [[stage, reason, n] for stage, counts in f.rejected.items() for reason, n in counts.most_common()]
    if rejected:
        parts.append(_table("rejections", ["stage", "reason", "count"], rejected))
    parts.append(_table("splits", ["train", "dev", "test"], [[f.splits.get(n, 0) for n in ("train", "dev", "test")]]))
    c = status.calls
    parts.append(_table("LM calls", ["calls", "prompt tokens", "completion tokens", "LM time (s)", "cost ($)",
                                     "failed"],
                        [[c.calls, c.prompt_tokens, c.completion_tokens, f"{c.latency_s:.1f}", f"{c.cost:.4f}",
                          c.failures]]))
    return "<div>" + "".join(parts) + "</div>"


def optimize_html(report: Any) -> str:
    """An optimize run's scores (mean and interval) per split and variant."""
    metric = (report.settings or {}).get("metric", "score")
    rows = [[split, variant, score.n, f"{score.mean:.3f}", f"[{score.low:.3f}, {score.high:.3f}]"]
            for (split, variant), score in sorted(report.scores.items())]
    title = f"optimize run {report.run_id} (round {report.round}, {(report.settings or {}).get('optimizer')}, " \
            f"metric {metric})"
    return _table(title, ["split", "variant", "n", metric, "95% interval"], rows)
