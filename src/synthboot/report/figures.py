"""The report's charts, as plotly figures built from `ReportData`.

Every string from the run (LM text, topics, reasons) is HTML-escaped before it reaches plotly:
plotly draws hover labels and tick labels from a small HTML subset, so raw text could inject
markup there. The JSON plotly writes into the page escapes `<` itself (`\\u003c`).
"""

from __future__ import annotations

import html
from collections import Counter

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from synthboot.report.data import ReportData, Row, main_field

LAYOUT = dict(template="plotly_white", height=360, margin=dict(l=60, r=20, t=50, b=50))
OUTCOME_SYMBOLS = {"kept": "circle", "dedup": "x", "pending": "square-open", "seed": "star"}
REJECTED_SYMBOL = "diamond-open"
TOPIC_COLOURS = plotly.colors.qualitative.Dark24  # one colour per topic, whatever the outcome


def esc(value: object, limit: int | None = None) -> str:
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    # Quotes stay as they are: with `<` escaped there is no tag for them to break out of, and
    # plotly would show `&quot;` literally.
    return html.escape(text, quote=False).replace("\n", "<br>")


def funnel(data: ReportData) -> go.Figure:
    f = data.status.funnel
    stages = [("generated", f.generated), ("parsed", f.parsed), ("schema-valid", f.schema_valid),
              ("rule-valid", f.rule_valid)] \
        + ([("grounded", f.grounded)] if data.status.coverage is not None else []) \
        + [("unique", f.unique), ("verified", f.verified), ("judged", f.judged_ok), ("kept", f.kept)]
    fig = go.Figure(go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages], textinfo="value+percent initial"))
    return fig.update_layout(title="Funnel", **LAYOUT)


def rejections(data: ReportData) -> go.Figure | None:
    items = [(f"{esc(stage)}: {esc(reason)}", n) for stage, counts in data.status.funnel.rejected.items()
             for reason, n in counts.most_common()]
    if not items:
        return None
    items.sort(key=lambda i: i[1])
    fig = go.Figure(go.Bar(x=[n for _, n in items], y=[r for r, _ in items], orientation="h"))
    return fig.update_layout(title="Rejections by reason", **{**LAYOUT, "margin": dict(l=220, r=20, t=50, b=50)})


def distribution(data: ReportData, name: str) -> go.Figure:
    d = data.status.diversity
    counts = d.distributions.get(name, {}) if d else {}
    target = d.targets.get(name, {}) if d else {}
    values = list(counts) + [v for v in target if v not in counts]
    total = max(1, d.total if d else 0)
    fig = go.Figure(go.Bar(name="kept", x=[esc(v) for v in values], y=[counts.get(v, 0) for v in values]))
    if target:
        fig.add_trace(go.Scatter(name="target", mode="markers", marker=dict(symbol="line-ew-open", size=28,
                                 line=dict(width=3)), x=[esc(v) for v in values],
                                 y=[target.get(v, 0) * total for v in values]))
    return fig.update_layout(title=f"{esc(name)} (kept examples)", **LAYOUT)


def embedding_map(data: ReportData, vectors: np.ndarray, rows: list[Row]) -> go.Figure | None:
    """A 2-D PCA of the examples' embeddings, coloured by topic; marker shape says the outcome."""
    if len(rows) < 3:
        return None
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ components[:2].T
    fig = go.Figure()
    topics = sorted({r.topic for r in rows})
    for topic in topics:
        for outcome_group in ("kept", "seed", "dedup", "rejected", "pending"):
            idx = [i for i, r in enumerate(rows) if r.topic == topic and _group(r) == outcome_group]
            if not idx:
                continue
            fig.add_trace(go.Scatter(
                x=xy[idx, 0], y=xy[idx, 1], mode="markers", legendgroup=esc(topic),
                name=f"{esc(topic)} · {outcome_group}",
                marker=dict(size=9, symbol=OUTCOME_SYMBOLS.get(outcome_group, REJECTED_SYMBOL),
                            color=TOPIC_COLOURS[topics.index(topic) % len(TOPIC_COLOURS)]),
                text=[_hover(data, rows[i]) for i in idx], hovertemplate="%{text}<extra></extra>"))
    return fig.update_layout(title="Examples by meaning (PCA of sentence embeddings)",
                             **{**LAYOUT, "height": 520}, xaxis_title="PC 1", yaxis_title="PC 2")


def _group(row: Row) -> str:
    if row.outcome in ("kept", "seed", "dedup", "pending"):
        return row.outcome
    return "rejected"


def _hover(data: ReportData, row: Row) -> str:
    head = f"#{row.id} {esc(row.outcome)}" + (f" ({esc(row.reason)})" if row.reason else "")
    return head + "<br>" + esc(row.text(data.names), 300)


def judge_scores(data: ReportData) -> go.Figure | None:
    scores = [r.score for r in data.rows if r.score is not None]
    if not scores:
        return None
    counts = Counter(int(s) for s in scores)
    fig = go.Figure(go.Bar(x=[1, 2, 3, 4, 5], y=[counts.get(s, 0) for s in range(1, 6)]))
    fig.add_vline(x=data.spec.judge.threshold - 0.5, line_dash="dash", annotation_text="threshold")
    return fig.update_layout(title="Judge scores", xaxis_title="score", yaxis_title="examples", **LAYOUT)


def splits(data: ReportData) -> go.Figure:
    sizes = data.status.funnel.splits
    names = ["train", "dev", "test"]
    field = main_field(data)
    fig = go.Figure()
    if field:
        values = list(data.schema.enum_fields()[field])
        for value in values:
            fig.add_trace(go.Bar(name=esc(value), x=names,
                                 y=[data.split_distributions.get(s, {}).get(field, {}).get(value, 0) for s in names]))
        fig.update_layout(barmode="stack", legend_title_text=esc(field))
    else:
        fig.add_trace(go.Bar(x=names, y=[sizes.get(s, 0) for s in names]))
    return fig.update_layout(title="Split sizes" + (f" by {esc(field)}" if field else ""), **LAYOUT)


def split_topics(data: ReportData) -> go.Figure:
    names = ["train", "dev", "test"]
    topics = sorted({t for s in names for t in data.split_distributions.get(s, {}).get("topic", {})})
    fig = go.Figure([go.Bar(name=esc(t), x=names,
                            y=[data.split_distributions.get(s, {}).get("topic", {}).get(t, 0) for s in names])
                     for t in topics])
    return fig.update_layout(title="Split sizes by topic", barmode="stack", **LAYOUT)


def tokens_by_stage(data: ReportData) -> go.Figure | None:
    groups = data.by_stage
    if not groups:
        return None
    names = [esc(g.name) for g in groups]
    fig = go.Figure([go.Bar(name="prompt tokens", x=names, y=[g.prompt_tokens for g in groups]),
                     go.Bar(name="completion tokens", x=names, y=[g.completion_tokens for g in groups])])
    return fig.update_layout(title="Tokens per stage", barmode="stack", **LAYOUT)


def optimization(data: ReportData) -> go.Figure | None:
    bars: dict[str, tuple[list[str], list[float], list[float], list[float]]] = {}
    for report in data.optimize:
        for (split, program), score in report.scores.items():
            if program == "gain":
                continue
            xs, ys, lo, hi = bars.setdefault(program, ([], [], [], []))
            xs.append(f"#{report.run_id} {esc(split)}")
            ys.append(score.mean)
            lo.append(score.mean - score.low)
            hi.append(score.high - score.mean)
    if not bars:
        return None
    fig = go.Figure([go.Bar(name=esc(p), x=xs, y=ys, error_y=dict(type="data", symmetric=False, array=hi,
                                                                   arrayminus=lo))
                     for p, (xs, ys, lo, hi) in bars.items()])
    return fig.update_layout(title="Optimization: score by split (95% bootstrap interval)", barmode="group",
                             yaxis_title="metric", **LAYOUT)
