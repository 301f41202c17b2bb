"""Text normalisation shared by dedup, import overlap checks and the built-in rules."""

from __future__ import annotations

import re


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace folded: what 'the same text' means for exact dedup."""
    return " ".join(re.findall(r"\w+", text.lower()))
