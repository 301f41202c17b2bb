"""The checks every spec gets without a rule: empty strings, list items, a label restated as the input."""

from __future__ import annotations

import pytest

from synthboot.errors import SpecError
from synthboot.loader import parse_spec
from synthboot.stages.validate import decide_all
from synthboot.store import Candidate

SPEC = """
name: reviews
task: Product reviews with the aspects they mention and their sentiment.
fields:
  review: {type: str, input: true}
  aspects: {type: "list[str]", min_items: 1, max_items: 3, item_max_length: 30}
  sentiment: {type: enum, values: [positive, negative, mixed]}
seeds:
  - {review: "Great battery, but the screen scratches easily.", aspects: [battery, screen], sentiment: mixed}
topics: [phones]
"""
GOOD = {"review": "The camera is sharp and the battery lasts all day.", "aspects": ["camera", "battery life"],
        "sentiment": "positive"}


def decide(fields: dict, spec_text: str = SPEC) -> tuple[bool, str | None, dict | None]:
    [d] = decide_all(parse_spec(spec_text), [Candidate(1, "lm", fields, "phones", 0)])
    return d.kept, d.reason, d.details


@pytest.mark.parametrize("change, reason", [
    ({"review": ""}, "empty:review"),
    ({"review": "   \n\t"}, "empty:review"),
    ({"aspects": ["{#3:1:"]}, "not_text_item:aspects"),
    ({"aspects": ['{"name": "battery"}']}, "not_text_item:aspects"),
    ({"aspects": ["[screen]"]}, "not_text_item:aspects"),
    ({"aspects": ["---"]}, "not_text_item:aspects"),
    ({"aspects": ["camera", "  "]}, "empty_item:aspects"),
    ({"aspects": ["an aspect described in far too many words"]}, "item_too_long:aspects"),
    ({"aspects": []}, "too_few_items:aspects"),
    ({"aspects": ["a1", "a2", "a3", "a4"]}, "too_many_items:aspects"),
    ({"review": "Positive."}, "answer_leak"),
    ({"review": "mixed"}, "answer_leak"),
    ({"review": "The sentiment is negative"}, "answer_leak"),
])
def test_default_checks_reject_with_a_named_reason(change, reason):
    kept, got, details = decide({**GOOD, **change})
    assert not kept and got == reason
    assert reason in details["failures"]


def test_good_items_and_inputs_that_only_mention_a_label_pass():
    assert decide(GOOD)[0]
    assert decide({**GOOD, "aspects": ["C++ bindings", "price/quality", "5G"]})[0]
    assert decide({**GOOD, "review": "Negative reviews scared me, but the phone is great."})[0]


def test_answer_leak_can_be_switched_off():
    assert decide({**GOOD, "review": "Positive."}, SPEC + "checks: {answer_leak: false}\n")[0]


def test_empty_string_is_named_before_the_schema_complains():
    spec = SPEC.replace("review: {type: str, input: true}", "review: {type: str, input: true, min_length: 5}")
    assert decide({**GOOD, "review": " "}, spec)[1] == "empty:review"


def test_item_options_only_on_list_fields():
    with pytest.raises(SpecError, match="only for fields of type list"):
        parse_spec(SPEC.replace("review: {type: str, input: true}", "review: {type: str, input: true, min_items: 1}"))


def test_default_item_length_is_the_generators_string_bound():
    spec = SPEC.replace(", item_max_length: 30", "") + "generate: {max_string_length: 20}\n"
    assert decide({**GOOD, "aspects": ["an aspect longer than twenty"]}, spec)[1] == "item_too_long:aspects"
    assert decide(GOOD, spec)[0]
