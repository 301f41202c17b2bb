"""The HTML report of a run: one self-contained file (plotly.js inline and gzipped, no network to view it).

`write_report(run_dir)` reads the run store (`report.data`), draws the charts (`report.figures`)
and renders `templates/report.html.j2` with Jinja2, autoescaping every value: all text the LM
wrote is untrusted. The review web app lives beside it in `report.review_app`.
"""

from __future__ import annotations

import base64
import functools
import gzip
import re
from collections.abc import Callable
from pathlib import Path

import jinja2
import plotly.offline

from synthboot.report import figures
from synthboot.report.data import ReportData, collect

__all__ = ["build_html", "collect", "write_report"]

Progress = Callable[[str, int, int], None]  # (stage, done, total), as in pipeline.run
MAP_LIMIT = 5000  # examples drawn on the embedding map (a sample beyond it)


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("synthboot.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


# Chart scripts wait for plotly.js, which the page unpacks first (see `packed_plotly_js`).
CHART_SCRIPT = '<script type="text/x-plotly-chart">'


def _embed(fig) -> str:
    # plotly.js is inlined once in the page head; each chart is a div and its JSON (with `<` escaped).
    html = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})
    return re.sub(r'<script(?: type="text/javascript")?>', CHART_SCRIPT, html)


@functools.lru_cache(maxsize=1)
def packed_plotly_js() -> str:
    """plotly.min.js gzipped and base64-encoded: 1.8 MB in the page instead of 4.6 MB.

    Plotly's Python package ships only the full bundle (no partial bundles offline). The page unpacks
    it with the browser's DecompressionStream, then runs the chart scripts; base64 holds no markup.
    """
    packed = gzip.compress(plotly.offline.get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def chart_html(data: ReportData, embedder: str = "local", progress: Progress | None = None) -> dict[str, str]:
    charts = {"funnel": figures.funnel(data), "rejections": figures.rejections(data),
              "judge": figures.judge_scores(data), "splits": figures.splits(data),
              "split_topics": figures.split_topics(data), "tokens": figures.tokens_by_stage(data),
              "optimize": figures.optimization(data)}
    for name in [*data.schema.enum_fields(), "topic"]:
        charts[f"dist:{name}"] = figures.distribution(data, name)
    mapped = [r for r in data.rows if r.fields is not None][:MAP_LIMIT]
    if len(mapped) >= 3:
        import numpy as np

        from synthboot.embeddings import get_embedder
        from synthboot.progress import chunked

        model = get_embedder(embedder)
        on_progress = None if progress is None else (lambda done, total: progress("report: embed", done, total))
        vectors = np.vstack(chunked([r.text(data.names) for r in mapped], model.encode, on_progress))
        charts["map"] = figures.embedding_map(data, vectors, mapped)
    return {name: _embed(fig) for name, fig in charts.items() if fig is not None}


def build_html(data: ReportData, embedder: str = "local", progress: Progress | None = None) -> str:
    return environment().get_template("report.html.j2").render(
        data=data, charts=chart_html(data, embedder, progress), plotly_packed=packed_plotly_js(),
        enum_fields=list(data.schema.enum_fields()))


def write_report(run_dir: str | Path, to: str | Path | None = None, *, embedder: str = "local",
                 progress: Progress | None = None) -> Path:
    """Write the report (default RUN_DIR/report.html) and return its path."""
    path = Path(to) if to else Path(run_dir) / "report.html"
    text = build_html(collect(run_dir), embedder, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
