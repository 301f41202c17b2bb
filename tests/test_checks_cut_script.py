"""Default checks for a text cut at its length bound (`truncated:<field>`) and for letters of a
script that neither the seeds nor the inputs use (`mixed_script:<field>`); and the item a reply
cut at max_tokens left unfinished, which never parses and says why.

The false alarms matter more than the catches: finished answers that end exactly at the bound,
code, lists, accented Latin, emoji and math must pass.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

import synthboot
from synthboot.checks import ends_finished
from synthboot.lm.scripted import scripted_lm
from synthboot.loader import parse_spec
from synthboot.schema import TaskSchema
from synthboot.scripts import scripts_of
from synthboot.stages.generate import CUT_REPLY, parse_items, reply_items
from synthboot.stages.validate import decide_all
from synthboot.status import run_status
from synthboot.store import Candidate

SPEC = """
name: quiz
task: Question-answer pairs for a Python quiz.
fields:
  question: {type: str, input: true, max_length: 300}
  answer: {type: str, max_length: 120}
  keywords: {type: "list[str]", max_items: 5}
  topic: {type: str, max_length: 40}
seeds:
  - {question: "What is a list?", answer: "A mutable sequence.", keywords: [list], topic: basics}
  - {question: "What does len() return?", answer: "The number of items in a container.", keywords: [len],
     topic: basics}
topics: [basics]
"""
QUESTION = "What is the difference between threads and processes in Python?"
# The demo's kept answer, cut by the grammar at its 500-character bound in the middle of a word,
# with Chinese for "variables" (BENCHMARKS.md, the demo spec on Qwen2.5-Coder-1.5B), shortened
# here to a 120-character bound.
CUT = "Threads share one memory space, so changes made to one thread's variables are seen by the other thread, while a process'"


def at_bound(text: str, bound: int = 120) -> str:
    """`text` padded at the front with words to exactly `bound` characters."""
    pad = "In short, " * 20
    return (pad + text)[-bound:] if len(text) < bound else text[:bound]


def decide(answer: str, spec_text: str = SPEC, **fields) -> tuple[bool, str | None, dict | None]:
    item = {"question": QUESTION, "answer": answer, "keywords": ["threads"], "topic": "concurrency", **fields}
    [d] = decide_all(parse_spec(spec_text), [Candidate(1, "lm", item, "basics", 0)])
    return d.kept, d.reason, d.details


def test_the_demo_answer_cut_at_its_bound_is_truncated():
    assert len(CUT) == 120
    kept, reason, details = decide(CUT)
    assert not kept and reason == "truncated:answer"
    assert "120 characters (bound 120)" in details["failures"]["truncated:answer"]


@pytest.mark.parametrize("ending", [
    "and the other process does not see the changes made to its vari",  # mid-word
    "changes made to one process are not seen by the other process,",  # after a comma
    "Use a lock, e.g. with threading.Lock() around the (shared state",  # an open bracket
    'the docs call this "the global interpreter',  # an open double quote
    "the GIL makes the CPU-bound part run on one core and the",
])
def test_texts_cut_at_the_bound_are_truncated(ending):
    assert decide(at_bound(ending))[1] == "truncated:answer"


@pytest.mark.parametrize("ending", [
    "threads share memory, processes do not.",
    "Do threads share memory?",
    "use `multiprocessing.Pool(4).map(f, xs)`",  # code in backticks
    "for example: [1, 2, 3]",  # a list literal
    "(see the `threading` docs)",
    'they call it the "GIL"',
    "the result is 42",  # a number ends many finished answers
    "threads are cheap 🚀",  # an emoji
    "it's the 'global interpreter lock'",  # quotes, with an apostrophe before them
    "Ni los hilos ni los procesos lo evitan: ¡así es!",
    "end with an ellipsis…",
    "x = compute(a, b);",
])
def test_finished_texts_at_the_bound_pass(ending):
    assert decide(at_bound(ending))[0], at_bound(ending)


def test_unfinished_endings_below_the_bound_or_in_short_fields_pass():
    assert decide("threads share memory and processes do not")[0]  # far below the bound
    assert decide("Threads share memory.", topic="threads and processes in CPython now")[0]  # bound 40 < 80
    # No max_length: the generator's bound applies (generate.max_string_length).
    spec = SPEC.replace("answer: {type: str, max_length: 120}", "answer: {type: str}") + \
        "generate: {max_string_length: 120}\n"
    assert decide(CUT, spec)[1] == "truncated:answer"
    assert decide(CUT + " longer than the bound, so not cut by it", spec.replace("120", "300"))[0]


def test_truncated_can_be_switched_off():
    assert decide(CUT, SPEC + "checks: {truncated: false}\n")[0]


def test_ends_finished_on_plain_text():
    assert ends_finished("A sentence.") and ends_finished("Done!") and ends_finished("f(x)")
    assert ends_finished("线程共享内存，进程不共享。")  # a CJK full stop
    assert not ends_finished("cut in the mid") and not ends_finished("f(x") and not ends_finished('say "hi')


def test_a_chinese_word_in_an_english_answer_is_mixed_script():
    kept, reason, details = decide("Threads share one memory space, so one thread's 变量 are seen by the others.")
    assert not kept and reason == "mixed_script:answer"
    assert "CJK" in details["failures"]["mixed_script:answer"] and "变量" in details["failures"]["mixed_script:answer"]
    assert decide("Threads share memory.", keywords=["threads", "线程"])[1] == "mixed_script:keywords"
    assert decide("Потоки разделяют память.")[1] == "mixed_script:answer"


@pytest.mark.parametrize("answer", [
    "Use naïve locking in a café: Müller's Ångström-sized critical sections, señor.",
    "Threads are cheap 🚀🧵 and processes are not ✅",
    "The cost is O(n²) ≤ ∑ᵢ λ·π, with Δt ≈ 3 µs per switch → fine.",
    "A lambda (λ) is an anonymous function; θ and α are just names.",
    "Use `print(f'{x!r}')` — it prints “quoted” text «like this».",
    "- threads: shared memory\n- processes: separate memory\n1. start 2. join",
    "ＡＢＣ fullwidth letters and ℓ, ℕ, 𝑥 styled letters are not a script.",
])
def test_latin_accents_emoji_math_code_and_lists_are_not_mixed_script(answer):
    assert decide(answer)[0], answer


def test_scripts_the_seeds_or_the_input_use_are_allowed():
    chinese_seeds = SPEC.replace("answer: \"A mutable sequence.\"", "answer: \"列表是可变序列。\"")
    assert decide("线程共享同一个内存空间，进程不共享 (use threading.Lock).", chinese_seeds)[0]
    # A translation-like item: the Cyrillic output is allowed by the Cyrillic input.
    assert decide("Потоки разделяют память.", question="Переведите: threads share memory")[0]
    assert decide("Threads share one memory space: 变量.", SPEC + "checks: {mixed_script: false}\n")[0]


def test_scripts_of_letters():
    assert scripts_of("café naïve") == {"LATIN"}
    assert scripts_of("漢字とカタカナ") == {"CJK"}
    assert scripts_of("Ελληνικά and x") == {"GREEK", "LATIN"}
    assert scripts_of("π ≈ 3.14 🚀") == set()


def test_the_reasons_are_stored_and_counted_by_status(tmp_path):
    items = [{"question": "What does a thread share?", "answer": CUT, "keywords": ["threads"], "topic": "threads"},
             {"question": "What is a process?", "answer": "A process has its own 内存 space.", "keywords": ["process"],
              "topic": "processes"},
             {"question": "What does join() do?", "answer": "It waits for the thread to finish.",
              "keywords": ["join"], "topic": "threads"}]
    spec = parse_spec(SPEC + "generate: {per_call: 3}\nverify: {enabled: false}\n"
                      "dedup: {semantic: false}\ndiversity: {embeddings: false}\n")
    synthboot.run(spec, tmp_path / "run", lm=scripted_lm([json.dumps({"examples": items})], cycle=True), limit=3)
    rejected = run_status(tmp_path / "run").funnel.rejected["validate"]
    assert rejected["truncated:answer"] == 1 and rejected["mixed_script:answer"] == 1
    db = sqlite3.connect(tmp_path / "run" / "synthboot.db")
    [(details,)] = db.execute("SELECT details FROM decisions WHERE stage = 'validate' AND reason = 'mixed_script:answer'")
    assert "内存" in json.loads(details)["failures"]["mixed_script:answer"]


def test_the_item_a_reply_cut_at_max_tokens_left_unfinished_says_so():
    schema = TaskSchema.from_spec(parse_spec(SPEC))
    text = '{"examples": [{"question": "q1?", "answer": "a1."}, {"question": "q2?", "ans'
    cut = reply_items(parse_items(text, schema), text, "length", None)
    assert cut[0]["fields"] is not None and "parse_error" not in cut[0]
    assert cut[1]["parse_error"].startswith(CUT_REPLY + "invalid JSON")
    assert not reply_items(parse_items(text, schema), text, "stop", None)[1]["parse_error"].startswith(CUT_REPLY)
    [nothing] = reply_items([], '{"exa', "length", "Adapter failed")
    assert nothing["fields"] is None and nothing["parse_error"] == CUT_REPLY + "Adapter failed"
    whole = '{"examples": [{"question": "q1?", "answer": "a1."}'  # cut between items: every item is whole
    assert "parse_error" not in reply_items(parse_items(whole, schema), whole, "length", None)[0]
