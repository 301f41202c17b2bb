"""Hostile text planted in a run as if the LM had written it, to prove pages escape it.

Each payload sets `window.__xss` (or opens a dialog) if any page ever runs it as markup.
"""

from __future__ import annotations

from pathlib import Path

import synthboot
from synthboot.spec import Spec
from synthboot.store import Store

TOPIC = '<img src=x onerror="window.__xss=5">'
PAYLOADS = [
    {"question": "<script>window.__xss = 1</script>What does open() return in Python?",
     "answer": '"><img src=x onerror="window.__xss=2;alert(2)"> A file object for reading or writing.',
     "difficulty": "easy"},
    {"question": "'\"><svg onload=window.__xss=3> How do Python threads share state safely?",
     "answer": "</textarea></dd><script>window.__xss=4</script> Through shared memory guarded by locks.",
     "difficulty": "hard"},
]


def plant(run_dir: Path) -> list[int]:
    """The payloads as generated candidates of topic TOPIC, decided by the stages."""
    return add_generated(run_dir, PAYLOADS, topic=TOPIC, key="gen:r0:planted:0")


def add_generated(run_dir: Path, items: list[dict], *, topic: str, key: str) -> list[int]:
    """Add items as one finished generation task, then let the (LM-free) stages decide them."""
    with Store(run_dir) as store:
        body = store.latest_spec()
        store.finish_task(key=key, stage="generate", topic=topic, round=0, call_id=None,
                          items=[{"fields": p, "raw": str(p)} for p in items], model="planted", temperature=None)
        ids = [c.id for c in store.candidates(origin="lm") if c.task_key == key]
    # Every planned task is done, so this re-run makes no LM call; it filters and splits the new items.
    result = synthboot.run(Spec.model_validate(body), run_dir)
    assert result.lm_calls_made == 0
    return ids
