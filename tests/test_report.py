"""The HTML report of a real run of the embedded model, opened in headless Chromium."""

from __future__ import annotations

import re
import sqlite3

from synthboot.cli import main
from synthboot.report import chart_html, collect, write_report

from .support.browser import browser_page, screenshot
from .support.untrusted import PAYLOADS, TOPIC, plant


def test_report_renders_charts_and_escapes_planted_payloads(tiny_run, copy_run, tmp_path):
    run = copy_run(tiny_run)
    planted = plant(run)
    path = write_report(run, tmp_path / "report.html")
    made = chart_html(collect(run))
    html = path.read_text(encoding="utf-8")
    assert len(html) < 2_500_000  # plotly.js gzipped inline: about 2 MB, not 4.8 MB
    # No payload survives as markup: its angle brackets are escaped wherever it appears.
    assert "<script>window.__xss" not in html and "<img src=x" not in html and "<svg onload" not in html

    with browser_page() as w:
        # Self-contained: plotly.js is inline; the page asks the network for nothing.
        fetched: list[str] = []
        w.page.route(re.compile(r"^(?!file:).*"), lambda route: (fetched.append(route.request.url), route.abort()))
        w.page.goto(path.as_uri())
        w.page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        w.page.wait_for_timeout(500)
        plots = w.page.locator(".js-plotly-plot")
        # Every chart the report made (funnel, distributions, map, split charts, tokens, and rejections
        # when something was rejected) drew its SVG.
        assert plots.count() == len(made) >= 7
        for i in range(plots.count()):
            assert plots.nth(i).locator("svg.main-svg").count() > 0, f"chart {i} did not render"
        # The map's hover label shows a payload as text, not markup.
        hovered = w.page.evaluate("""() => {
            const map = Array.from(document.querySelectorAll('.js-plotly-plot'))
                .find(d => (d.layout.title.text || '').startsWith('Examples by meaning'));
            const curve = map.data.findIndex(t => (t.text || []).some(s => s.includes('window.__xss')));
            Plotly.Fx.hover(map, [{curveNumber: curve, pointNumber: 0}]);
            return map.querySelector('.hovertext') ? map.querySelector('.hovertext').textContent : null;
        }""")
        assert hovered is not None and "window.__xss" in hovered
        table = w.page.locator("#candidates").inner_text()
        assert PAYLOADS[0]["question"] in table and PAYLOADS[1]["answer"] in table and TOPIC in table
        # Search narrows the table to the planted rows.
        w.page.fill("#search", "window.__xss = 1")
        assert w.page.locator("#candidates tbody tr:not([hidden])").count() == 1
        w.page.fill("#search", "")
        ids = "rows => rows.map(r => Number(r.cells[0].textContent))"
        header = w.page.locator("#candidates thead th").first
        header.click()
        ascending = w.page.eval_on_selector_all("#candidates tbody tr", ids)
        header.click()
        assert ascending == sorted(ascending) and len(ascending) > 3
        assert w.page.eval_on_selector_all("#candidates tbody tr", ids) == sorted(ascending, reverse=True)
        screenshot(w, "report.png")
        assert w.page.evaluate("window.__xss") is None
        assert w.page.evaluate("document.querySelectorAll('img, svg[onload]').length") == 0
        assert w.dialogs == [] and fetched == []
        assert w.console_errors == []
    assert len(planted) == 2


def test_report_figures_match_the_store(tiny_run):
    data = collect(tiny_run)
    db = sqlite3.connect(tiny_run / "synthboot.db")
    generated = db.execute("SELECT COUNT(*) FROM candidates WHERE origin = 'lm'").fetchone()[0]
    assert data.status.funnel.generated == generated
    assert len([r for r in data.rows if r.origin == "lm"]) == generated
    calls, prompt, completion = db.execute(
        "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) FROM lm_calls").fetchone()
    (stage,) = data.by_stage
    assert (stage.name, stage.calls, stage.prompt_tokens, stage.completion_tokens) == \
        ("generate", calls, prompt, completion)
    (model,) = data.by_model
    assert model.name == "local/smollm2" and model.cost == 0.0 and model.latency_s > 0
    # Every duplicate is listed under the example it matched, with its similarity.
    dups = {r.id for r in data.rows if r.outcome == "dedup"}
    assert {r.id for c in data.clusters for r in c.absorbed} == dups
    assert all(r.similarity is not None for c in data.clusters for r in c.absorbed)


def test_report_command_writes_the_file(tiny_run, copy_run, capsys):
    run = copy_run(tiny_run)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out and (run / "report.html").exists()
    assert (run / "report.html").stat().st_size > 1_000_000  # plotly.js inline
    assert "report: embed" in out.err  # progress lines on a non-terminal
