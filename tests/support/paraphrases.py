"""Generated MRPC-like sentence pairs: news-style sentences, each with a paraphrase or an unrelated twin.

Written here instead of cut from MRPC (whose terms are research-use only): the tests need short
real-looking sentences with near-duplicates among them, not MRPC's labels.
"""

from __future__ import annotations

import random

_SUBJECTS = ["The company", "Shares of the retailer", "The central bank", "The city council", "Local police",
             "The software maker", "The airline", "Health officials", "The union", "The school board",
             "Investors", "The hospital", "The court", "Researchers", "The mayor"]
_EVENTS = [
    ("said quarterly profit rose {n} percent", "reported that its profit for the quarter grew by {n} percent"),
    ("cut interest rates by {n} basis points", "lowered its key rate by {n} basis points"),
    ("announced {n} job cuts on Monday", "said on Monday it would eliminate {n} jobs"),
    ("approved a budget of {n} million dollars", "voted to pass a {n} million dollar budget"),
    ("arrested {n} people after the protest", "detained {n} demonstrators following the protest"),
    ("delayed the launch by {n} weeks", "pushed back the release by {n} weeks"),
    ("expects sales to fall {n} percent next year", "forecast a {n} percent drop in sales for next year"),
    ("reported {n} new cases of the flu", "confirmed {n} additional influenza cases"),
    ("rejected the offer of a {n} percent raise", "turned down a proposed {n} percent pay increase"),
    ("will close {n} schools in the fall", "plans to shut {n} schools this autumn"),
]


def sentence_pairs(n_pairs: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    """`n_pairs` (sentence, twin, is_paraphrase); about two thirds are paraphrases, as in MRPC."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n_pairs):
        subject = rng.choice(_SUBJECTS)
        a, b = rng.choice(_EVENTS)
        n = rng.randint(2, 90)
        first = f"{subject} {a.format(n=n)}."
        if rng.random() < 2 / 3:
            pairs.append((first, f"{subject} {b.format(n=n)}.", True))
        else:
            other = rng.choice([e for e in _EVENTS if e[0] != a])
            pairs.append((first, f"{rng.choice(_SUBJECTS)} {other[1].format(n=rng.randint(2, 90))}.", False))
    return pairs
