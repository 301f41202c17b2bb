"""The per-signature caches in front of DSPy's JSONAdapter, and the direct native engine under the
rate limiter: both must send exactly what DSPy alone would send."""

from __future__ import annotations

import dspy
import pytest

import synthboot
from synthboot.lm import make_lm
from synthboot.lm.adapter import CachingJSONAdapter
from synthboot.lm.calls import store_as_lm_cache
from synthboot.lm.limits import Limits, native_engine
from synthboot.schema import TaskSchema
from synthboot.stages.generate import make_generator
from synthboot.stages.judge import JudgeQuality
from synthboot.store import Store

from .conftest import EXAMPLE_SPEC
from .support.openai_server import serve


def _signatures():
    spec = synthboot.load_spec(EXAMPLE_SPEC)
    return [make_generator(TaskSchema.from_spec(spec), spec).signature, JudgeQuality]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "openai/no-such-model-here"])
def test_messages_and_response_format_equal_dspys(model):
    # A known model takes a JSON schema; an unknown one gets json_object mode: both paths cached.
    lm = dspy.LM(model, api_base="http://127.0.0.1:9/v1", api_key="x")
    cached, plain = CachingJSONAdapter(), dspy.JSONAdapter()
    inputs = {"task": "t", "seed_examples": "[]", "topic": "loops", "count": 2, "rubric": "r", "example": "{}"}
    for signature in _signatures():
        mine = {k: v for k, v in inputs.items() if k in signature.input_fields}
        for _ in range(2):  # the second time from the cache
            assert cached.format(signature, demos=[], inputs=mine) == plain.format(signature, demos=[], inputs=mine)
            got, want = {}, {}
            cached._prepare_response_format(lm, got, signature)
            plain._prepare_response_format(lm, want, signature)
            assert got.keys() == want.keys()
            if isinstance(want.get("response_format"), type):  # DSPy builds a new model class each time
                assert got["response_format"].model_json_schema() == want["response_format"].model_json_schema()
            else:
                assert got == want
        # A caller editing its kwargs cannot change the next call's format.
        got = {}
        cached._prepare_response_format(lm, got, signature)
        if isinstance(got.get("response_format"), dict):
            got["response_format"]["type"] = "edited"
            again = {}
            cached._prepare_response_format(lm, again, signature)
            assert again["response_format"]["type"] != "edited"


def test_new_instructions_are_a_new_signature():
    adapter = CachingJSONAdapter()
    signature = _signatures()[1]
    changed = signature.with_instructions("Judge harshly.")
    assert adapter.format_field_structure(signature) == dspy.JSONAdapter().format_field_structure(signature)
    assert adapter.format(changed, demos=[], inputs={"task": "t", "rubric": "r", "example": "{}"})[0]["content"] \
        == dspy.JSONAdapter().format(changed, demos=[], inputs={"task": "t", "rubric": "r", "example": "{}"})[0]["content"]


def test_native_engine_only_where_dspy_routes_natively():
    assert native_engine(dspy.LM("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="x")).provider \
        == "openai-chat"
    assert native_engine(dspy.LM("openai/gpt-4o-mini", engine="litellm")) is None
    assert native_engine(make_lm("local")) is None  # a custom engine


def test_limited_lm_sends_the_same_request_as_plain_dspy(tmp_path):
    # The same call through the rate-limited LM (direct native engine) and through a plain dspy.LM:
    # the server must receive identical bodies, and both replies parse the same way.
    with serve() as url, Store(tmp_path / "s", create=True) as store, store_as_lm_cache(store):
        limited = make_lm("openai/gpt-4o-mini", api_base=url, temperature=0.5, max_tokens=50, limits=Limits())
        plain = dspy.LM("openai/gpt-4o-mini", api_base=url, api_key="synthboot-local", temperature=0.5,
                        max_tokens=50, cache=False, num_retries=0)
        signature = _signatures()[1]
        outputs = []
        for lm in (limited, plain):
            with dspy.context(lm=lm, adapter=CachingJSONAdapter()):
                outputs.append(dspy.Predict(signature)(task="t", rubric="r", example="{}").toDict())
        first, second = url.server.requests
        assert first.body == second.body
        assert outputs[0] == outputs[1]
