"""Which writing systems a text's letters are in, by Unicode character name (no extra dependency).

Only letters count: digits, punctuation, emoji and math symbols belong to no script here. Latin
with accents is Latin ("LATIN SMALL LETTER E WITH ACUTE"). Han, Hiragana and Katakana are one
script, `CJK` (Japanese mixes all three); letters named after a style rather than a script
(mathematical, fullwidth, modifier letters) count as none. A Greek letter standing alone or in a
pair (π, λ, Δx) is a math symbol; three Greek letters in a row are Greek text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# First word of a letter's name -> its script, where the word is not the script's own name.
_ALIASES = {"CJK": "CJK", "HIRAGANA": "CJK", "KATAKANA": "CJK", "IDEOGRAPHIC": "CJK", "KANGXI": "CJK",
            "KATAKANA-HIRAGANA": "CJK"}
# Letters whose name says a style or a form, not a writing system.
_NO_SCRIPT = frozenset({"MATHEMATICAL", "FULLWIDTH", "HALFWIDTH", "MODIFIER", "DOUBLE-STRUCK", "BLACK-LETTER",
                        "SCRIPT", "CIRCLED", "PARENTHESIZED", "SQUARED", "NEGATIVE", "SUPERSCRIPT", "SUBSCRIPT",
                        "COMBINING", "PLANCK", "ANGSTROM", "KELVIN", "OHM", "MICRO", "FEMININE", "MASCULINE",
                        "TURNED", "INFORMATION", "NUMERO", "ESTIMATED"})
_GREEK_WORD = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]{3,}")


@lru_cache(maxsize=4096)
def script_of(ch: str) -> str | None:
    """The script of one character, or None for a non-letter or a letter of no script."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return None
    first = name.split(" ", 1)[0]
    if first in _NO_SCRIPT:
        return None
    return _ALIASES.get(first, first)


def scripts_of(text: str) -> set[str]:
    """The scripts of a text's letters, e.g. {'LATIN'} or {'LATIN', 'CJK'}."""
    found = {s for ch in set(text) if (s := script_of(ch)) is not None and s != "GREEK"}
    if _GREEK_WORD.search(text):
        found.add("GREEK")
    return found


def first_in_script(text: str, script: str) -> str:
    """A short run of `text` around its first character in `script` (for a rejection's detail)."""
    for i, ch in enumerate(text):
        if script_of(ch) == script:
            return text[max(0, i - 15):i + 10]
    return ""
