"""Review decisions: stored with reviewer and time, outranking the filters in outcomes, splits and
exports; and the review page driven end to end in headless Chromium."""

from __future__ import annotations

import json

import httpx
import pytest

import synthboot
from synthboot.reviews import ReviewError, add_review, latest_reviews, review_history
from synthboot.report.review_app import serve
from synthboot.spec import Spec
from synthboot.status import candidate_outcomes, run_status
from synthboot.store import Store

from .support.browser import browser_page, screenshot
from .support.untrusted import PAYLOADS, TOPIC, add_generated, plant

SHORT = {"question": "What does os.walk yield for each directory it visits?", "answer": "Tuples.",
         "difficulty": "easy"}


def exported(run) -> list[dict]:
    rows = []
    for path in synthboot.export(run, "jsonl"):
        if path.name != "candidates.jsonl":
            rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def test_reviews_outrank_filters_in_outcomes_splits_and_exports(tiny_run, copy_run):
    run = copy_run(tiny_run)
    (short_id,) = add_generated(run, [SHORT], topic="file-io", key="gen:r0:review:0")
    with Store(run) as store:
        outcomes = candidate_outcomes(store)
        assert outcomes[short_id] == ("validate", "answer_too_short")
        kept_id = next(cid for cid, (stage, _) in outcomes.items() if stage == "kept")
        kept_question = store.candidates(ids=[kept_id])[0].fields["question"]

        add_review(store, short_id, "accept", reviewer="ada")
        add_review(store, kept_id, "reject", reviewer="ada", note="wrong answer")
        outcomes = candidate_outcomes(store)
        assert outcomes[short_id] == ("kept", "review:accepted")
        assert outcomes[kept_id] == ("review", "review:rejected")
        assert short_id in store.splits() and kept_id not in store.splits()

        edited = {**SHORT, "answer": "Tuples of (dirpath, dirnames, filenames).", "difficulty": "medium"}
        add_review(store, short_id, "edit", reviewer="bob", fields=edited)
        with pytest.raises(ReviewError, match="difficulty"):
            add_review(store, short_id, "edit", reviewer="bob", fields={**edited, "difficulty": "impossible"})
        with pytest.raises(ReviewError):
            add_review(store, 10_000, "accept", reviewer="bob")
        history = review_history(store, short_id)
        assert [(r.decision, r.reviewer) for r in history] == [("accept", "ada"), ("edit", "bob")]
        assert all(r.created_at for r in history)
        assert candidate_outcomes(store)[short_id] == ("kept", "review:edited")

    rows = exported(run)
    assert edited in rows and SHORT not in rows
    assert kept_question not in {r["question"] for r in rows}
    assert edited in [dict(e) for split in ("train", "dev", "test") for e in synthboot.load_split(run, split)]
    assert run_status(run).funnel.rejected["review"]["review:rejected"] == 1

    # A later run of the pipeline keeps the decisions: the split stage honours them too.
    with Store(run) as store:
        body = store.latest_spec()
    assert synthboot.run(Spec.model_validate(body), run).lm_calls_made == 0
    assert exported(run) == rows


def test_review_page_in_chromium(tiny_run, copy_run):
    run = copy_run(tiny_run)
    plant(run)
    (short_id,) = add_generated(run, [SHORT], topic="file-io", key="gen:r0:review:0")
    with Store(run) as store:
        generated = len(store.candidates(origin="lm"))
        planted = [c.id for c in store.candidates(origin="lm") if c.topic == TOPIC]

    with serve(run, port=0, reviewer="ada") as url, browser_page() as w:
        page = w.page
        page.goto(url)
        assert page.locator(".cand").count() == generated
        assert page.locator("#reviewer-name").inner_text() == "ada"

        # Filter by reason: only the short answer.
        page.select_option("#filter-reason", "answer_too_short")
        with page.expect_navigation():
            page.click("#apply-filters")
        assert page.locator(".cand").count() == 1
        card = page.locator(f"#c{short_id}")
        assert card.locator(".outcome").inner_text() == "validate"
        with page.expect_navigation():
            card.locator("button.accept").click()
        # Back on the same filtered page: the filters' verdict still matches, the decision outranks it.
        assert "reason=answer_too_short" in page.url and page.locator(".cand").count() == 1
        card = page.locator(f"#c{short_id}")
        assert card.locator(".outcome").inner_text() == "kept"
        assert card.locator(".review").inner_text() == "accept by ada"
        assert card.locator(".filters").inner_text() == "· filters said validate (answer_too_short)"

        # Filter by topic (the planted, hostile one); edit one payload, reject the other.
        page.goto(url)
        page.select_option("#filter-topic", TOPIC)
        with page.expect_navigation():
            page.click("#apply-filters")
        assert sorted(int(x) for x in page.locator(".cand").evaluate_all("els => els.map(e => e.dataset.id)")) \
            == planted
        first, second = planted
        page.locator(f"#c{first} details.edit summary").click()
        page.fill(f"#f{first}-answer", "A file object, opened for reading by default.")
        page.select_option(f"#f{first}-difficulty", "medium")
        # Each button posts a form and the server redirects back: wait for that page before the next
        # step, or the next click (or the reload) races the navigation.
        with page.expect_navigation():
            page.locator(f"#c{first} button.save").click()
        with page.expect_navigation():
            page.locator(f"#c{second} button.reject").click()

        # Reload: the decisions persisted.
        page.reload()
        assert page.locator(f"#c{first} .field-answer").inner_text() == "A file object, opened for reading by default."
        assert page.locator(f"#c{first} .review").inner_text() == "edit by ada"
        assert page.locator(f"#c{second} .outcome").inner_text() == "review"
        # The question kept its payload as plain text, and nothing planted ever ran.
        assert page.locator(f"#c{first} .field-question").inner_text() == PAYLOADS[0]["question"]
        screenshot(w, "review.png")
        assert page.evaluate("window.__xss") is None
        assert page.evaluate("document.querySelectorAll('img, svg[onload]').length") == 0
        assert w.dialogs == [] and w.console_errors == []

        # A form without the page's token (another site posting to this server) is refused.
        assert httpx.post(f"{url}review/{first}", data={"decision": "reject", "reviewer": "mallory"}).status_code == 403

    with Store(run) as store:
        reviews = latest_reviews(store)
        assert {cid: (r.decision, r.reviewer) for cid, r in reviews.items()} == \
            {short_id: ("accept", "ada"), first: ("edit", "ada"), second: ("reject", "ada")}
        assert reviews[first].fields == {**PAYLOADS[0], "answer": "A file object, opened for reading by default.",
                                         "difficulty": "medium"}
    rows = exported(run)
    assert reviews[first].fields in rows and SHORT in rows
    assert PAYLOADS[1]["question"] not in {r["question"] for r in rows}
