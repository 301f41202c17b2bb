"""The embedded engine's faster paths keep its outputs: grammar shortlist, lazy grammar, saved prompt states.

Real SmolLM2 via llama.cpp, short generations (a few seconds each).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthboot.lm.local import LlamaCppEngine, grammar_text, resolve_model_path
from synthboot.lm.prefix_states import MIN_GAIN_TOKENS, PrefixStates, common_prefix

SCHEMA = {"type": "object", "additionalProperties": False,
          "properties": {"question": {"type": "string", "maxLength": 120},
                         "answer": {"type": "string", "maxLength": 160},
                         "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]}},
          "required": ["question", "answer", "difficulty"]}
INSTRUCTIONS = ("You write quiz questions about Python as JSON objects with the fields question, answer and "
                "difficulty. Questions are clear and specific; answers are concise and factual, one or two "
                "sentences. Vary the subject and the wording; never repeat an earlier question. ")


def _llama(mode: str, states: PrefixStates | None = None):
    from synthboot.lm.llama_instance import EmbeddedLlama

    return EmbeddedLlama(model_path=str(resolve_model_path("smollm2")), n_ctx=2048, n_threads=1, n_threads_batch=1,
                         verbose=False, grammar_mode=mode, prefix_states=states)


def _ask(llama, system: str, topic: str, *, seed: int, temperature: float = 0.9, max_tokens: int = 90) -> dict:
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_string(grammar_text(json.dumps(SCHEMA)), verbose=False)
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": f"Write one question about {topic} with its answer."}]
    return llama.create_chat_completion(messages=messages, grammar=grammar, temperature=temperature, seed=seed,
                                        max_tokens=max_tokens, repeat_penalty=1.1)


def _text(out: dict) -> str:
    return out["choices"][0]["message"]["content"]


def _valid_prefix(text: str, finish: str) -> bool:
    """Complete JSON of the schema's shape, or (cut by max_tokens) a prefix of it the grammar allowed."""
    if finish == "stop":
        value = json.loads(text)
        return set(value) == {"question", "answer", "difficulty"} and value["difficulty"] in ("easy", "medium", "hard")
    return text.lstrip().startswith("{") and "\n" not in text.strip()


def test_shortlist_sampler_gives_the_eager_chains_tokens():
    eager, shortlist = _llama("eager"), _llama("shortlist")
    try:
        for seed, temperature in ((7, 0.9), (8, 0.9), (9, 0.0)):
            a, b = _ask(eager, INSTRUCTIONS, "file-io", seed=seed, temperature=temperature), \
                _ask(shortlist, INSTRUCTIONS, "file-io", seed=seed, temperature=temperature)
            assert _text(a) == _text(b), (seed, temperature)
            assert _valid_prefix(_text(b), b["choices"][0]["finish_reason"])
        sampler = shortlist.last_sampler
        assert sampler is not None and sampler.samples > 0
        # The shortlist did the work: the grammar saw the whole vocabulary on a minority of steps.
        assert sampler.full_passes < sampler.samples / 2
    finally:
        eager.close()
        shortlist.close()


def test_lazy_sampler_is_grammar_valid_and_deterministic_per_seed():
    lazy = _llama("lazy")
    try:
        outs = [_ask(lazy, INSTRUCTIONS, topic, seed=seed, max_tokens=150)
                for topic, seed in (("testing", 3), ("concurrency", 4), ("testing", 3))]
        assert _text(outs[0]) == _text(outs[2])
        for out in outs:
            assert _valid_prefix(_text(out), out["choices"][0]["finish_reason"])
        assert lazy.last_sampler is not None and lazy.last_sampler.samples > 0
    finally:
        lazy.close()


def test_saved_prompt_states_change_no_output_and_are_used():
    """Prompts that differ early (as the `conditioned` strategy's do) reuse an earlier prompt's state."""
    systems = {level: f"Difficulty: {level}. " + INSTRUCTIONS * 3 for level in ("easy", "hard")}
    calls = [("easy", "file-io", 1), ("hard", "file-io", 2), ("easy", "testing", 3), ("hard", "testing", 4)]
    states = PrefixStates()
    cached, plain = _llama("shortlist", states), _llama("shortlist")
    try:
        with_states = [_text(_ask(cached, systems[level], topic, seed=seed, max_tokens=40))
                       for level, topic, seed in calls]
        without = [_text(_ask(plain, systems[level], topic, seed=seed, max_tokens=40)) for level, topic, seed in calls]
    finally:
        cached.close()
        plain.close()
    assert with_states == without
    # Calls 3 and 4 restored the state of calls 1 and 2 (the whole system message), which the
    # previous prompt (the other difficulty) could not give.
    assert states.hits == 2 and states.tokens_restored > 2 * 100


def test_engine_rejects_an_unknown_sampler_and_records_its_settings():
    with pytest.raises(ValueError, match="sampler must be one of"):
        LlamaCppEngine(sampler="fast")
    engine = LlamaCppEngine(sampler="lazy", prefix_states_mb=0)
    assert engine.prefix_states is None
    assert LlamaCppEngine.load_state(engine.dump_state()).dump_state() == engine.dump_state()


def test_prefix_states_pick_the_longest_shared_prefix_and_stay_bounded():
    def tokens(*parts: int) -> np.ndarray:
        return np.array(parts, dtype=np.intc)

    assert common_prefix(tokens(1, 2, 3), tokens(1, 2, 4)) == 2
    assert common_prefix(tokens(1, 2), tokens(1, 2, 4)) == 2
    long_a = np.arange(200, dtype=np.intc)
    long_b = np.concatenate([np.arange(150, dtype=np.intc), np.full(50, -1, dtype=np.intc)])
    states = PrefixStates(capacity_bytes=250)
    states.add(long_a, b"a" * 100)
    states.add(long_b, b"b" * 100)
    query = np.concatenate([np.arange(180, dtype=np.intc), np.full(5, -2, dtype=np.intc)])
    found = states.best(query, better_than=0)
    assert found is not None and found[0].state == b"a" * 100 and found[1] == 180
    # Not worth a restore when the live context already holds nearly as much.
    assert states.best(query, better_than=180 - MIN_GAIN_TOKENS + 1) is None
    states.add(tokens(*range(300)), b"c" * 100)  # over 250 bytes: the least recently used (b) goes
    assert len(states) == 2
    assert states.best(long_b, better_than=0)[0].state != b"b" * 100
