"""Parsing a generator reply item by item (scripted replies: exact bytes matter here)."""

from __future__ import annotations

import json

import synthboot
from synthboot.schema import TaskSchema
from synthboot.stages.generate import parse_items, plan_tasks

from .conftest import EXAMPLE_SPEC

SCHEMA = TaskSchema.from_spec(synthboot.load_spec(EXAMPLE_SPEC))


def test_whole_reply():
    items = [{"question": "q1?", "answer": "a1"}, {"question": "q2?", "answer": "a2"}]
    parsed = parse_items(json.dumps({"examples": items}), SCHEMA)
    assert [p["fields"] for p in parsed] == items


def test_truncated_reply_keeps_complete_items():
    text = '{"examples": [{"question": "q1?", "answer": "a1"}, {"question": "q2?", "ans'
    parsed = parse_items(text, SCHEMA)
    assert parsed[0]["fields"] == {"question": "q1?", "answer": "a1"}
    assert parsed[1]["fields"] is None and "invalid JSON" in parsed[1]["parse_error"]


def test_non_object_item_is_kept_with_reason():
    parsed = parse_items('{"examples": ["just a string", {"question": "q?"}]}', SCHEMA)
    assert parsed[0]["parse_error"] == "item is not a JSON object"
    assert parsed[1]["fields"] == {"question": "q?"}


def test_no_list_at_all():
    assert parse_items("I cannot help with that.", SCHEMA) == []


def test_plan_is_round_robin_and_limit_is_exact():
    spec = synthboot.load_spec(EXAMPLE_SPEC)
    tasks = plan_tasks(spec, limit=42)
    assert sum(t.count for t in tasks) == 42
    assert [t.topic for t in tasks[:10]] == spec.topics  # the first batches cover every topic
    assert len({t.key for t in tasks}) == len(tasks)
    full = plan_tasks(spec)
    assert sum(t.count for t in full) == 200
