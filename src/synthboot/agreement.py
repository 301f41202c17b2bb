"""Does a predicted value agree with a generated one? One comparison per kind of field.

- enum, bool, int: exact (after normalising case and spaces; "42" and 42.0 are the int 42).
- float: equal within `tolerance`, absolute or relative to the larger magnitude.
- str: the same after normalising (case, punctuation, spacing) or the same number, else the
  cosine of their sentence embeddings reaches `threshold`. Two short texts (four words or fewer:
  names, labels, numbers) need a cosine of 0.85 at least: short different answers embed close.
- list: Jaccard of the sets of normalised items reaches `threshold`.

The verify stage (synthboot.stages.verify) uses these; `Agreement.score` is what it stores.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

SHORT_WORDS = 4
SHORT_MIN_COSINE = 0.85
_NUMBER = re.compile(r"^[-+]?[$€£]?\s*\d[\d,]*(?:\.\d+)?\s*%?$")


@dataclass(frozen=True)
class Agreement:
    agree: bool
    score: float  # 1.0 / 0.0 for exact matches, the cosine or Jaccard otherwise
    match: str    # how it was compared

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(value: Any) -> str:
    """Lower case, punctuation dropped, spaces collapsed: the text two equal answers share."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return " ".join(re.findall(r"\w+", text.lower().replace("_", " ")))


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        try:
            return float(re.sub(r"[,$€£%\s]", "", value.strip()))
        except ValueError:
            return None
    return None


def exact(generated: Any, predicted: Any) -> Agreement:
    g, p = as_number(generated), as_number(predicted)
    if g is not None and p is not None:
        return Agreement(g == p, float(g == p), "exact")
    if isinstance(generated, bool) or isinstance(predicted, bool):
        same = str(generated).strip().lower() == str(predicted).strip().lower()
        return Agreement(same, float(same), "exact")
    same = normalize(generated) == normalize(predicted)
    return Agreement(same, float(same), "exact")


def number(generated: Any, predicted: Any, tolerance: float) -> Agreement:
    g, p = as_number(generated), as_number(predicted)
    if g is None or p is None or math.isnan(g) or math.isnan(p):
        return Agreement(False, 0.0, "number")
    diff = abs(g - p)
    same = diff <= tolerance or diff <= tolerance * max(abs(g), abs(p))
    return Agreement(same, float(same), "number")


def jaccard(generated: Any, predicted: Any, threshold: float) -> Agreement:
    g = {normalize(v) for v in (generated or [])} - {""}
    p = {normalize(v) for v in (predicted or [])} - {""}
    score = 1.0 if not g and not p else len(g & p) / len(g | p)
    return Agreement(score >= threshold, round(score, 4), "jaccard")


def text(generated: Any, predicted: Any, threshold: float, embedder: Any | None) -> Agreement:
    """Normalised match, the same number, or embedding cosine (when an embedder is given)."""
    g_norm, p_norm = normalize(generated), normalize(predicted)
    if g_norm and g_norm == p_norm:
        return Agreement(True, 1.0, "normalized")
    g_num, p_num = as_number(str(generated)), as_number(str(predicted))
    if g_num is not None and p_num is not None:
        return Agreement(g_num == p_num, float(g_num == p_num), "number")
    if embedder is None or not g_norm or not p_norm:
        return Agreement(False, 0.0, "normalized")
    rows = embedder.encode([str(generated), str(predicted)])
    cosine = float(rows[0] @ rows[1])
    short = len(g_norm.split()) <= SHORT_WORDS and len(p_norm.split()) <= SHORT_WORDS
    needed = max(threshold, SHORT_MIN_COSINE) if short else threshold
    return Agreement(cosine >= needed, round(cosine, 4), "embedding")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def compare(kind: str, generated: Any, predicted: Any, *, match: str | None = None, threshold: float = 0.6,
            tolerance: float = 1e-6, embedder: Any | None = None) -> Agreement:
    """How `predicted` agrees with `generated` for a field of `kind` (synthboot.schema.TaskSchema.kind)."""
    match = match or {"float": "number", "str": "embedding", "list": "jaccard"}.get(kind, "exact")
    if match == "number":
        return number(generated, predicted, tolerance)
    if match == "jaccard":
        return jaccard(_as_list(generated), _as_list(predicted), threshold)
    if match == "embedding":
        return text(generated, predicted, threshold, embedder)
    if match == "normalized":
        return text(generated, predicted, threshold, None)
    return exact(generated, predicted)
