"""Generation strategies (generate.strategy): what each batch asks for, with a scripted LM.

The prompts are exact here; the real embedded model runs the default strategy in `tiny_run`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import pytest
from rich.console import Console

import synthboot
from synthboot.errors import SynthbootError
from synthboot.lm.scripted import scripted_lm
from synthboot.cli.render import print_status
from synthboot.schema import all_seeds
from synthboot.stages.generate import plan_tasks
from synthboot.stages.strategies import value_cycle
from synthboot.status import run_status
from synthboot.store import Store

from .conftest import EXAMPLE_SPEC, TINY_SPEC


def field_of(prompt: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?:\n\n\[\[ ## |\n\nRespond with|\Z)", prompt, re.S)
    assert match, f"no {name} in the prompt"
    return match.group(1).strip()


def examples_reply(counter=None):
    """`count` distinct examples, each honouring the difficulty the prompt asks for (if any)."""
    counter = counter or itertools.count()

    def reply(prompt: str) -> str:
        count = int(field_of(prompt, "count"))
        wanted = re.search(r"difficulty = (\w+)", prompt)
        items = []
        for _ in range(count):
            k = next(counter)
            items.append({"question": f"w{k}a w{k}b w{k}c w{k}d question number {k}?",
                          "answer": f"A specific answer number {k}.",
                          "difficulty": wanted.group(1) if wanted else "easy"})
        return json.dumps({"examples": items})
    return reply


def spec_with(text: str, **generate) -> synthboot.Spec:
    spec = synthboot.parse_spec(text)
    return spec.model_copy(update={"generate": spec.generate.model_copy(update=generate)})


def user_messages(lm) -> list[str]:
    return [r.messages[-1].text for r in lm.engine.requests]


def test_cells_follow_the_targets_and_rotate_within_a_topic():
    spec = synthboot.load_spec(EXAMPLE_SPEC)  # targets easy .3 / medium .4 / hard .3, 10 topics, 4 batches each
    tasks = plan_tasks(spec.model_copy(update={"generate": spec.generate.model_copy(update={"strategy": "conditioned"})}))
    first_wave = [dict(t.cell)["difficulty"] for t in tasks[:10]]
    assert Counter(first_wave) == {"easy": 3, "medium": 4, "hard": 3}
    per_topic = [dict(t.cell)["difficulty"] for t in tasks if t.topic == "file-io"]
    assert len(set(per_topic)) == 3  # a topic's batches move through the values
    assert len({t.key for t in tasks}) == len(tasks) and all(":conditioned:" in t.key for t in tasks)
    assert Counter(value_cycle(["a", "b"], {"a": 0.8, "b": 0.2})) == {"a": 8, "b": 2}


def test_few_shot_keeps_its_keys():
    spec = synthboot.parse_spec(TINY_SPEC)
    tasks = plan_tasks(spec.model_copy(update={"generate": spec.generate.model_copy(update={"strategy": "few_shot"})}))
    assert [t.key for t in tasks] == ["gen:r0:file-io:0", "gen:r0:concurrency:0"] and not tasks[0].cell


def test_conditioned_asks_for_one_cell_pins_it_and_shows_no_seed(tmp_path):
    spec = spec_with(TINY_SPEC + "dedup: {semantic: false}\n", strategy="conditioned", per_topic=4)
    lm = scripted_lm([examples_reply()], cycle=True)
    synthboot.run(spec, tmp_path / "run", lm=lm)
    tasks = plan_tasks(spec)
    assert len(lm.engine.requests) == len(tasks) == 4
    seeds = all_seeds(spec)
    for task, request in zip(sorted(tasks, key=lambda t: t.key), sorted(lm.engine.requests, key=lambda r: (
            field_of(r.messages[-1].text, "topic"), field_of(r.messages[-1].text, "attributes")))):
        prompt = request.messages[-1].text
        assert all(s["question"] not in prompt for s in seeds)  # told what to make, not shown what exists
        assert field_of(prompt, "topic") in spec.topics
        assert re.match(r"difficulty = (easy|medium|hard)", field_of(prompt, "attributes"))
    # The output grammar pins the cell: the schema sent allows only the asked difficulty.
    for request in lm.engine.requests:
        asked = re.search(r"difficulty = (\w+)", request.messages[-1].text).group(1)
        schema = json.dumps(request.config.response_format)
        assert f'"const": "{asked}"' in schema or f'"enum": ["{asked}"]' in schema
    with Store(tmp_path / "run") as store:
        keys = store.task_keys()
        cands = store.candidates(origin="lm")
    assert len(keys) == 4
    for c in cands:  # each candidate carries the difficulty its batch asked for
        assert c.task_key.split(":")[-1] == c.fields["difficulty"]


LABEL_SPEC = """
name: intents
task: Requests a user sends to a bank assistant, each with its intent.
fields:
  utterance: {type: str, description: What the user says, input: true}
  intent:
    type: enum
    values: [balance, bill_due]
    description: The user's intent
    meanings: {balance: how much money is in an account, bill_due: when a bill is due}
seeds:
  - {utterance: what is my checking balance, intent: balance}
  - {utterance: when is my phone bill due, intent: bill_due}
topics: [requests]
generate: {per_topic: 2, per_call: 1, strategy: conditioned}
dedup: {semantic: false}
verify: {enabled: false}
"""


def test_a_label_call_sees_only_its_own_meaning_and_the_label_comes_first(tmp_path):
    spec = synthboot.parse_spec(LABEL_SPEC)

    def reply(prompt: str) -> str:
        label = re.search(r"intent = (\w+)", prompt).group(1)
        return json.dumps({"examples": [{"intent": label, "utterance": f"a request about {label}"}]})
    lm = scripted_lm([reply], cycle=True)
    synthboot.run(spec, tmp_path / "run", lm=lm)
    assert len(lm.engine.requests) == 2
    for request in lm.engine.requests:
        attributes = field_of(request.messages[-1].text, "attributes")
        label = re.match(r"intent = (\w+)", attributes).group(1)
        meaning = spec.fields["intent"].meanings[label]
        other = next(m for v, m in spec.fields["intent"].meanings.items() if v != label)
        assert meaning in attributes and other not in request.messages[-1].text
        schema = request.config.response_format["schema"]
        item = next(iter(schema["$defs"].values()))
        assert list(item["properties"]) == ["intent", "utterance"]  # the pinned label is written first
        assert item["properties"]["intent"]["description"] == meaning


def test_meanings_are_checked_at_load():
    with pytest.raises(Exception, match="meanings"):
        synthboot.parse_spec(LABEL_SPEC.replace("bill_due: when a bill is due", "bills: when a bill is due"))
    with pytest.raises(Exception, match="meanings"):
        synthboot.parse_spec(LABEL_SPEC.replace("{type: str, description: What the user says, input: true}",
                                                "{type: str, input: true, meanings: {a: b}}"))


def test_style_seeds_rotate_and_earlier_waves_are_avoided(tmp_path):
    seeds = "\n".join(f'  - {{question: "Seed question number {i} about lists?", answer: "A seed answer {i}.",'
                      f' difficulty: easy}}' for i in range(4))
    text = TINY_SPEC.split("seeds:")[0] + "seeds:\n" + seeds + "\ntopics:" + TINY_SPEC.split("topics:")[1]
    spec = spec_with(text + "dedup: {semantic: false}\n", strategy="style_seeds", per_topic=4, seeds_per_call=2)
    lm = scripted_lm([examples_reply()], cycle=True)
    result = synthboot.run(spec, tmp_path / "run", lm=lm)
    assert result.generate.tasks_run == 4
    prompts = user_messages(lm)
    windows = [tuple(s["question"] for s in json.loads(field_of(p, "style_examples"))) for p in prompts]
    assert all(len(w) == 2 for w in windows)
    assert len(set(windows)) >= 2 and len({q for w in windows for q in w}) == 4  # every seed shown, rotating
    assert "different subject" in str(lm.engine.requests[0].system)  # style only, said explicitly
    # Wave 0 has nothing to avoid; wave 1 lists what wave 0 wrote for the same topic.
    with Store(tmp_path / "run") as store:
        wave0 = {c.topic: c.fields["question"] for c in store.candidates(origin="lm") if c.task_key.endswith(
            tuple(f":0:{d}" for d in ("easy", "medium", "hard")))}
    first, later = prompts[:2], prompts[2:]
    assert all(field_of(p, "avoid") == "(none yet)" for p in first)
    for p in later:
        assert wave0[field_of(p, "topic")] in field_of(p, "avoid")
    again = synthboot.run(spec, tmp_path / "run", lm=scripted_lm([]))
    assert again.lm_calls_made == 0  # the waves' prompts are rebuilt identically from the store


def test_subtopics_are_proposed_once_stored_listed_and_reused(tmp_path):
    text = re.sub(r"\ntopics: .*\n", "\n", TINY_SPEC) + "dedup: {semantic: false}\n"
    spec = spec_with(text, strategy="subtopics", subtopics=3, per_topic=1, per_call=1)
    assert spec.topics == []
    proposal = json.dumps({"subtopics": ["file handling", "File Handling ", "}, { ,", "context managers",
                                         "string formatting"]})
    examples = examples_reply()
    lm = scripted_lm([lambda prompt: proposal if "[[ ## seed_examples ## ]]" in prompt else examples(prompt)],
                     cycle=True)
    synthboot.run(spec, tmp_path / "run", lm=lm)
    assert "subtopics" in str(lm.engine.requests[0].system).lower()
    status = run_status(tmp_path / "run")
    # Case-insensitive duplicates and JSON debris dropped, capped at `subtopics`.
    assert status.subtopics == ["file handling", "context managers", "string formatting"]
    assert status.spec.topics == status.subtopics  # the stored spec carries them for every later command
    console = Console(record=True, width=200)
    print_status(console, status)
    text = console.export_text()
    assert "topics proposed by the LM (3" in text and "file handling; context managers; string formatting" in text
    with Store(tmp_path / "run") as store:
        topics = {c.topic for c in store.candidates(origin="lm")}
        purposes = {t.name: t.calls for t in store.call_totals(by="purpose")}
    assert topics == set(status.subtopics) and purposes == {"subtopics": 1, "generate": 3}
    again = synthboot.run(spec, tmp_path / "run", lm=scripted_lm([]))  # any call would raise
    assert again.lm_calls_made == 0
    # Topics listed in the spec win: no proposal call.
    listed = spec_with(TINY_SPEC + "dedup: {semantic: false}\n", strategy="subtopics", per_topic=1, per_call=1)
    lm2 = scripted_lm([examples_reply()], cycle=True)
    synthboot.run(listed, tmp_path / "run2", lm=lm2)
    assert len(lm2.engine.requests) == 2 and run_status(tmp_path / "run2").subtopics is None


def test_subtopics_that_do_not_parse_are_a_clear_error(tmp_path):
    text = re.sub(r"\ntopics: .*\n", "\n", TINY_SPEC)
    spec = spec_with(text, strategy="subtopics")
    with pytest.raises(SynthbootError, match="no usable subtopics"):
        synthboot.run(spec, tmp_path / "run", lm=scripted_lm(['{"subtopics": []}']))


def test_mutate_rewrites_seeds_then_earlier_examples(tmp_path):
    spec = spec_with(TINY_SPEC + "dedup: {semantic: false}\n", strategy="mutate", per_topic=6, per_call=2)
    tasks = plan_tasks(spec)
    assert {t.mutation for t in tasks} == {"subject", "constraint", "enum"}
    assert all(bool(t.cell) == (t.mutation == "enum") for t in tasks)
    lm = scripted_lm([examples_reply()], cycle=True)
    synthboot.run(spec, tmp_path / "run", lm=lm)
    prompts = user_messages(lm)
    assert len(prompts) == 6
    seeds = [json.dumps(s, ensure_ascii=False) for s in all_seeds(spec)]
    first, later = prompts[:2], prompts[2:]
    assert all(field_of(p, "example") in seeds for p in first)  # wave 0 rewrites seeds
    for p in later:  # later waves rewrite what earlier waves generated on the same topic
        source = json.loads(field_of(p, "example"))
        assert source["question"].startswith("w") and field_of(p, "example") not in seeds
    changes = {field_of(p, "change") for p in prompts}
    assert any(c.startswith("Change the subject") for c in changes)
    assert any(c.startswith("Rewrite it so that difficulty =") for c in changes)
    assert synthboot.run(spec, tmp_path / "run", lm=scripted_lm([])).lm_calls_made == 0


def test_default_strategy_on_the_embedded_model(tiny_run):
    """The real model under the default strategy: each batch's grammar pins its cell, and no seed is copied."""
    from synthboot.spec import GenerateSpec

    strategy = GenerateSpec().strategy
    with Store(tiny_run) as store:
        cands = store.candidates(origin="lm")
        spec = synthboot.Spec.model_validate(store.latest_spec())
    assert spec.generate.strategy == strategy
    parsed = [c for c in cands if c.fields]
    assert parsed, "the embedded model produced no parsed candidate"
    tasks = {t.key: t for t in plan_tasks(spec)}
    seeds = {s["question"].lower() for s in all_seeds(spec)}
    for c in parsed:
        cell = dict(tasks[c.task_key].cell)
        if cell:
            assert c.fields.get("difficulty") == cell["difficulty"]
        assert str(c.fields.get("question", "")).lower() not in seeds
