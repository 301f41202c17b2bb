"""The review page: a small FastAPI app on 127.0.0.1 over one run's store.

A person pages through the generated candidates, filters them by topic, outcome, reason and judge
score, and accepts, rejects or edits them. Every decision goes to the store through
`synthboot.reviews.add_review` (with the reviewer's name and the time), where it outranks the
automatic filters and is reflected in splits and exports at once.

The pages are rendered on the server with Jinja2 autoescaping and plain HTML forms, so no LM text
ever passes through JavaScript. Forms carry a per-process token: another site open in the same
browser cannot post decisions to this server.
"""

from __future__ import annotations

import getpass
import math
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_origin
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.datastructures import QueryParams

from synthboot.report.data import Row, candidate_rows
from synthboot.reviews import DECISIONS, ReviewError, add_review
from synthboot.schema import TaskSchema
from synthboot.store import Store
from synthboot.task import Task

PAGE_SIZE = 20
FILTERS = ("topic", "outcome", "reason", "review", "min_score", "max_score")
REVIEW_FILTERS = ("none", *DECISIONS)


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def create_app(run_dir: str | Path, reviewer: str | None = None) -> FastAPI:
    # Under the run lock: the page writes reviews and re-splits, so no run may change the store meanwhile.
    store = Store(run_dir, lock=True)
    spec = store.find_spec()
    if spec is None:
        store.close()
        raise ReviewError(f"{run_dir} has no spec yet: run `synthboot run` first")
    schema = Task.of(spec).schema
    token = secrets.token_urlsafe(16)
    default_name = reviewer or default_reviewer()
    from synthboot.report import environment

    template = environment().get_template("review.html.j2")
    app = FastAPI(title="synthboot review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    def generated() -> list[Row]:
        return [r for r in candidate_rows(store) if r.origin == "lm"]

    def page(q: QueryParams, error: str | None = None, status_code: int = 200) -> HTMLResponse:
        every = candidate_rows(store)
        rows = [r for r in every if r.origin == "lm"]
        shown = select(rows, q)
        # The text of the example each duplicate matched (a seed or another candidate), shown beside it.
        matched = {r.id: r.text(schema.names) for r in every}
        pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
        number = min(max(1, _int(q.get("page"), 1)), pages)
        filters = {k: q.get(k, "") for k in FILTERS}
        name = q.get("reviewer") or default_name
        keep = {k: v for k, v in {**filters, "reviewer": name, "page": str(number)}.items() if v}
        return HTMLResponse(template.render(
            run_dir=str(run_dir), rows=shown[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], total=len(rows),
            matching=len(shown), page=number, pages=pages, filters=filters, reviewer=name, token=token,
            names=schema.names, enums=schema.enum_fields(), list_fields=_list_fields(schema), error=error,
            topics=sorted({r.topic for r in rows}), outcomes=sorted({r.filter_outcome or "" for r in rows} - {""}),
            reasons=sorted({r.filter_reason for r in rows if r.filter_reason}), review_filters=REVIEW_FILTERS,
            query=urlencode(keep), matched=matched,
            page_link=lambda n: "?" + urlencode({**keep, "page": str(n)})), status_code=status_code)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return page(request.query_params)

    @app.post("/review/{candidate_id}")
    async def review(candidate_id: int, request: Request):
        form = await request.form()
        if not secrets.compare_digest(str(form.get("token", "")), token):
            return HTMLResponse("stale or foreign form: reload the review page", status_code=403)
        decision = str(form.get("decision", ""))
        fields = None
        if decision == "edit":
            fields = {name: _form_value(schema, name, form.getlist(f"field:{name}")) for name in schema.names
                      if f"field:{name}" in form}
        try:
            add_review(store, candidate_id, decision, reviewer=str(form.get("reviewer") or default_name),
                       fields=fields, note=str(form.get("note") or "") or None)
        except ReviewError as exc:
            return page(QueryParams(str(form.get("back", ""))), error=f"#{candidate_id}: {exc}", status_code=400)
        back = str(form.get("back", ""))
        return RedirectResponse(f"/?{back}#c{candidate_id}", status_code=303)

    @app.get("/api/candidates")
    def api_candidates(request: Request) -> JSONResponse:
        rows = select(generated(), request.query_params)
        return JSONResponse([{"id": r.id, "topic": r.topic, "outcome": r.outcome, "reason": r.reason,
                              "filter_outcome": r.filter_outcome, "filter_reason": r.filter_reason,
                              "score": r.score, "split": r.split, "review": r.review, "reviewer": r.reviewer,
                              "fields": r.fields} for r in rows])

    return app


def select(rows: list[Row], q: Any) -> list[Row]:
    """The rows matching a query's filters: topic, the filters' outcome and reason (before review, so
    a decision does not hide what was decided), review decision ('none': not reviewed), judge score."""
    lo, hi = _float(q.get("min_score")), _float(q.get("max_score"))
    review = q.get("review")
    return [r for r in rows
            if (not q.get("topic") or r.topic == q.get("topic"))
            and (not q.get("outcome") or r.filter_outcome == q.get("outcome"))
            and (not q.get("reason") or r.filter_reason == q.get("reason"))
            and (not review or (r.review or "none") == review)
            and (lo is None or (r.score is not None and r.score >= lo))
            and (hi is None or (r.score is not None and r.score <= hi))]


def _list_fields(schema: TaskSchema) -> set[str]:
    return {n for n, info in schema.model.model_fields.items() if get_origin(info.annotation) is list}


def _form_value(schema: TaskSchema, name: str, values: list[Any]) -> Any:
    """A form's text as the field's value; pydantic converts numbers and booleans when validating."""
    text = str(values[-1]) if values else ""
    if name in _list_fields(schema):
        return [line.strip() for line in text.splitlines() if line.strip()]
    return text.replace("\r\n", "\n")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


@contextmanager
def serve(run_dir: str | Path, *, port: int = 0, reviewer: str | None = None) -> Iterator[str]:
    """Serve the review app on 127.0.0.1 in a background thread; yields its URL (port 0: any free one)."""
    import uvicorn

    from synthboot.errors import SynthbootError

    app = create_app(run_dir, reviewer)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="synthboot-review", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            app.state.store.close()
            raise SynthbootError(f"the review page could not listen on 127.0.0.1:{port} (in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.store.close()


__all__ = ["DECISIONS", "create_app", "select", "serve"]
