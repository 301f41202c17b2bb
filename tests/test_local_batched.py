"""The batched embedded engine (several requests per llama.cpp decode): replies, limits, failures.

Real SmolLM2 via llama.cpp, short generations (a few seconds each).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from llama_cpp import LlamaGrammar

from synthboot.lm.batched import BatchDecoder
from synthboot.lm.local import LlamaCppEngine, grammar_text, resolve_model_path
from synthboot.lm.sampling import ShortlistGrammarSampler

SCHEMA = {"type": "object", "additionalProperties": False,
          "properties": {"question": {"type": "string", "maxLength": 120},
                         "answer": {"type": "string", "maxLength": 160}},
          "required": ["question", "answer"]}
SYSTEM = "You write quiz questions about Python as JSON objects with the fields question and answer."
TOPICS = ("lists", "dicts", "loops", "strings", "files", "classes")
MODEL = str(resolve_model_path("smollm2"))


def _messages(topic: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Write one question about {topic} with its answer."}]


def _kwargs(seed: int, *, max_tokens: int = 80, grammar: bool = True, **more) -> dict:
    kwargs = {"temperature": 0.9, "max_tokens": max_tokens, "repeat_penalty": 1.1, "seed": seed, **more}
    if grammar:
        kwargs["grammar"] = LlamaGrammar.from_string(grammar_text(json.dumps(SCHEMA)), verbose=False)
    return kwargs


def _text(out: dict) -> str:
    return out["choices"][0]["message"]["content"]


@pytest.fixture(scope="module")
def decoder():
    decoder = BatchDecoder(MODEL, parallel=4, n_ctx=1024)
    yield decoder
    decoder.close()


def test_concurrent_requests_are_all_answered_with_grammar_valid_json(decoder):
    steps, rows = decoder.steps, decoder.rows
    futures = [decoder.submit(_messages(topic), _kwargs(seed)) for seed, topic in enumerate(TOPICS)]
    outs = [future.result(timeout=120) for future in futures]
    for out in outs:
        choice = out["choices"][0]
        assert choice["finish_reason"] == "stop", _text(out)
        assert set(json.loads(choice["message"]["content"])) == {"question", "answer"}
        usage = out["usage"]
        assert usage["completion_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Six requests on four sequence ids: several sequences went through each decode call.
    assert (decoder.rows - rows) / (decoder.steps - steps) > 1.5
    assert decoder.tokens_shared > 0  # later prompts took the shared system prompt from the cache


def test_one_sequence_at_a_time_gives_the_one_sequence_engines_replies():
    """Same prompt tokens, sampler, seed and stop rules as `create_chat_completion`: equal replies.

    With parallel > 1 a reply may differ: the attention sums run over the cache cells in their
    order, which depends on the other sequences (measured; see BENCHMARKS.md, issue 15)."""
    from synthboot.lm.llama_instance import EmbeddedLlama

    alone = EmbeddedLlama(model_path=MODEL, n_ctx=1024, n_threads=1, n_threads_batch=1, verbose=False)
    single = BatchDecoder(MODEL, parallel=1, n_ctx=1024)
    try:
        cases = [(_messages("loops"), _kwargs(3)),
                 (_messages("files"), _kwargs(4, max_tokens=7)),  # cut by max_tokens: "length"
                 (_messages("dicts"), _kwargs(5, stop=['"answer"'])),  # cut by a stop string
                 (_messages("sets"), _kwargs(6, grammar=False, max_tokens=30))]
        for messages, kwargs in cases:
            expected = alone.create_chat_completion(messages=messages, **kwargs)
            got = single.submit(messages, {**kwargs, "grammar": kwargs.get("grammar") and LlamaGrammar.from_string(
                grammar_text(json.dumps(SCHEMA)), verbose=False)}).result(timeout=120)
            assert _text(got) == _text(expected)
            assert got["usage"] == expected["usage"]
            assert got["choices"][0]["finish_reason"] == expected["choices"][0]["finish_reason"]
        assert single.tokens_shared > 0  # later prompts started from the first one's cells
    finally:
        single.close()
        alone.close()


def test_stop_strings_and_max_tokens_end_sequences_while_others_run(decoder):
    futures = [decoder.submit(_messages("loops"), _kwargs(11, max_tokens=6)),
               decoder.submit(_messages("files"), _kwargs(12, stop=['"answer"'])),
               decoder.submit(_messages("dicts"), _kwargs(13))]
    cut, stopped, full = (future.result(timeout=120) for future in futures)
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 6
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert '"answer"' not in _text(stopped) and _text(stopped).lstrip().startswith('{')
    assert set(json.loads(_text(full))) == {"question", "answer"}


class _FailingSampler(ShortlistGrammarSampler):
    """A sampler that breaks after a few tokens (a fault in one sequence, injected)."""

    def sample(self, ctx, idx=-1):
        if self.samples >= 3:
            raise RuntimeError("sampler broke")
        return super().sample(ctx, idx)


class _OneBadSeed(BatchDecoder):
    def _sampler(self, prompt):
        sampler = super()._sampler(prompt)
        if prompt.seed == 666:
            sampler.__class__ = _FailingSampler
        return sampler


def test_a_failing_sequence_fails_its_request_only():
    decoder = _OneBadSeed(MODEL, parallel=4, n_ctx=1024)
    try:
        too_long = [{"role": "user", "content": "word " * 1200}]
        futures = [decoder.submit(_messages("loops"), _kwargs(21)), decoder.submit(_messages("files"), _kwargs(666)),
                   decoder.submit(too_long, _kwargs(22)), decoder.submit(_messages("dicts"), _kwargs(23))]
        with pytest.raises(RuntimeError, match="sampler broke"):
            futures[1].result(timeout=120)
        with pytest.raises(ValueError, match="exceed context window"):
            futures[2].result(timeout=120)
        for future in (futures[0], futures[3]):
            assert set(json.loads(_text(future.result(timeout=120)))) == {"question", "answer"}
        # The decoder still serves new requests afterwards.
        assert json.loads(_text(decoder.submit(_messages("sets"), _kwargs(24)).result(timeout=120)))
    finally:
        decoder.close()


def test_engine_in_parallel_mode_answers_dspy_calls_with_usage():
    engine = LlamaCppEngine("smollm2", instances=1, parallel=4, n_ctx=1024)
    assert engine.concurrency == 4
    lm = dspy.LM("local/smollm2", engine=engine, temperature=0.9, max_tokens=200, num_retries=0, cache=False)
    try:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda topic: lm(messages=_messages(topic), response_format={
                "type": "json_schema", "json_schema": {"name": "qa", "schema": SCHEMA}}), TOPICS[:4]))
        assert all(set(json.loads(reply[0])) == {"question", "answer"} for reply in replies)
        assert engine.dump_state()["parallel"] == 4
    finally:
        engine.close()


def test_the_pipeline_keeps_a_batched_engines_calls_in_flight_unless_the_spec_says(tmp_path):
    from synthboot.pipeline import _engine_concurrency
    from synthboot.spec import load_spec
    from tests.conftest import TINY_SPEC

    lm = dspy.LM("local/smollm2", engine=LlamaCppEngine("smollm2", instances=2, parallel=4))  # loads nothing yet
    unset = tmp_path / "unset.yaml"
    unset.write_text(TINY_SPEC.replace(", concurrency: 2}", "}"))
    assert _engine_concurrency(lm, load_spec(unset)) == 8
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(TINY_SPEC)
    assert _engine_concurrency(lm, load_spec(explicit)) is None  # the spec's concurrency: 2 wins
    assert _engine_concurrency(None, load_spec(unset)) is None
