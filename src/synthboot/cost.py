"""Token and money accounting: prices, what a run has spent, and budgets that stop it cleanly.

Prices come from the price map DSPy ships (LiteLLM's published per-token prices, read from the
bundled snapshot: LITELLM_LOCAL_MODEL_COST_MAP keeps it offline). The embedded models cost
nothing; a model the map does not know has an unknown price (None), never a made-up zero.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from synthboot.errors import BudgetExhausted, SynthbootError
from synthboot.store import Store

# Models that run here, in-process, and cost nothing: the embedded engine and the test LM.
_FREE_PREFIXES = ("local/", "scripted/", "openai/synthboot-mock")  # synthboot.lm.MOCK_MODEL


def is_free(model: str | None) -> bool:
    return model is not None and (model in ("local", "mock") or model.startswith(_FREE_PREFIXES))


# Kept per model for the process: the price map is a bundled file, and this runs on every call.
@functools.lru_cache(maxsize=256)
def token_prices(model: str | None) -> tuple[float, float] | None:
    """(USD per prompt token, USD per completion token) for a DSPy model string; None when unknown."""
    if not model:
        return None
    if is_free(model):
        return (0.0, 0.0)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from dspy.clients.model_metadata import model_info, rate

    provider, _, name = model.partition("/")
    info = model_info(provider, name) if name else {}
    prompt, completion = rate(info, "input_cost_per_token"), rate(info, "output_cost_per_token")
    if prompt is None or completion is None:
        return None
    return (prompt, completion)


def call_cost(model: str | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """The price of one call from its token counts; None when the model's price is unknown."""
    prices = token_prices(model)
    if prices is None:
        return None
    return (prompt_tokens or 0) * prices[0] + (completion_tokens or 0) * prices[1]


@dataclass(frozen=True)
class Spend:
    calls: int
    tokens: int
    cost: float
    unpriced_calls: int  # calls to a model whose price is unknown: `cost` leaves them out


def spent(store: Store) -> Spend:
    """Everything the run has spent so far, over all its sessions (cached answers cost nothing)."""
    total = store.call_totals()[0]
    return Spend(calls=total.calls, tokens=total.tokens, cost=total.cost, unpriced_calls=total.unpriced_calls)


@dataclass(frozen=True)
class Budget:
    """A cap on what a run may spend in total: dollars, tokens, or both."""

    usd: float | None = None
    tokens: int | None = None

    def __str__(self) -> str:
        parts = ([f"${self.usd:g}"] if self.usd is not None else []) + \
                ([f"{self.tokens:,} tokens"] if self.tokens is not None else [])
        return " and ".join(parts) or "unlimited"

    def reached_by(self, spend: Spend) -> bool:
        return (self.usd is not None and spend.cost >= self.usd) or \
               (self.tokens is not None and spend.tokens >= self.tokens)


_MONEY = re.compile(r"^\$\s*(\d+(?:\.\d*)?|\.\d+)$|^(\d+(?:\.\d*)?|\.\d+)\s*(?:usd|\$|dollars?)$", re.IGNORECASE)
_TOKENS = re.compile(r"^(\d+(?:\.\d*)?)\s*([km]?)\s*(?:tokens?|tok)?$", re.IGNORECASE)


def parse_budget(text: str) -> Budget:
    """'$2', '2.50usd' -> money; '50000 tokens', '50k', '1.5M tokens' -> tokens. A bare number is refused."""
    value = text.strip().replace(",", "").replace("_", "")
    if m := _MONEY.match(value):
        return Budget(usd=float(m.group(1) or m.group(2)))
    m = _TOKENS.match(value)
    if m and (m.group(2) or re.search(r"tok", value, re.IGNORECASE)):
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        return Budget(tokens=int(float(m.group(1)) * scale))
    raise SynthbootError(f"cannot read the budget {text!r}: give money as '$2' or '2usd', "
                         "or tokens as '50000 tokens' or '50k'")


class BudgetGuard:
    """Asked before each new LM call: has the run reached its budget? Remembers that it stopped work."""

    def __init__(self, store: Store, budget: Budget, models: list[str | None]):
        self.store, self.budget = store, budget
        self.stopped_work = False
        if budget.usd is not None:
            unknown = sorted({m for m in models if m and token_prices(m) is None})
            if unknown:
                raise SynthbootError(f"a money budget needs prices, and DSPy's price map has none for "
                                     f"{', '.join(unknown)}; give a token budget instead (e.g. '200k tokens')")

    def exhausted(self) -> bool:
        if self.budget.reached_by(spent(self.store)):
            self.stopped_work = True
            return True
        return False

    def error(self, what_is_left: str) -> BudgetExhausted:
        s = spent(self.store)
        return BudgetExhausted(
            f"budget of {self.budget} reached (spent {s.tokens:,} tokens, ${s.cost:.4f} in {s.calls} calls); "
            f"stopped cleanly with {what_is_left}. Everything so far is stored: run again with a higher "
            "--budget to resume")
