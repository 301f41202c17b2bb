"""Error text fit for one terminal line: whitespace collapsed, long values cut, never mid-word.

Messages quote user data (a 100 KB topic) and provider errors (LiteLLM's multi-line reports with the
provider's JSON inside). The full text goes to `synthboot-error.log`; the line a user reads is this.
"""

from __future__ import annotations

import re

LINE_LIMIT = 600  # characters of one error line
VALUE_LIMIT = 80  # characters of one quoted value inside it
PROVIDER_LIMIT = 240  # characters of a provider's own message

_SPACE = re.compile(r"\s+")
# The provider's own sentence inside LiteLLM's report: {'error': {'message': '...'}} or "message": "...".
_PROVIDER_MESSAGE = re.compile(r"""['"]message['"]\s*:\s*(['"])(?P<m>(?:\\.|(?!\1).)+)\1""")
# Wrappers LiteLLM and DSPy put before it: "litellm.AuthenticationError: AuthenticationError: OpenAIException - ".
_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)\s*(?::|-)\s*|Error code: \d+\s*-\s*)+")
# LiteLLM's trailing notes about its router, not about the failure.
_NOISE = re.compile(r"\s*(?:Received Model Group|Available Model Group Fallbacks|LiteLLM Retried|"
                    r"model_group=|Retried: \d|To fix:).*$", re.S)
# DSPy's "[openai/gpt-4o] " before the provider's text: the model is named in our own sentence.
_MODEL_TAG = re.compile(r"^\[[^\]\s]+\]\s*")
# Quoted values ('...' or "...") longer than VALUE_LIMIT.
_LONG_QUOTED = re.compile(r"""(['"])([^'"]{%d,})\1""" % (VALUE_LIMIT + 1))
# Unquoted runs with no punctuation that long are values too (a topic inside a task key), not prose.
_LONG_RUN = re.compile(r"""[^'":;()\[\]{}]{%d,}""" % (4 * VALUE_LIMIT))


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters, cut at a word boundary with an ellipsis."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else one very long word is cut
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + "…"


def _shorten_value(match: re.Match) -> str:
    quote, value = match.group(1), match.group(2)
    return f"{quote}{shorten(value, VALUE_LIMIT)}{quote} ({len(value):,} chars)"


def _shorten_run(match: re.Match) -> str:
    value = match.group(0)
    return f"{shorten(value, VALUE_LIMIT)} ({len(value):,} chars)"


def one_line(message: str, limit: int = LINE_LIMIT) -> str:
    """A user-facing error message as one line: long quoted values shortened, then the whole capped.

    A message too long even then keeps its head and its tail (which says how to resume).
    """
    text = _LONG_QUOTED.sub(_shorten_value, _SPACE.sub(" ", message).strip())
    text = _LONG_RUN.sub(_shorten_run, text)
    if len(text) <= limit:
        return text
    tail = text[-(limit // 3):]
    tail = tail[tail.find(" ") + 1:] if " " in tail else tail
    return f"{shorten(text, limit - len(tail) - 3)} … {tail}"


def provider_message(text: str, limit: int = PROVIDER_LIMIT) -> str:
    """The readable core of a provider/LiteLLM error: the provider's own message, without wrappers."""
    found = _PROVIDER_MESSAGE.search(text)
    core = found.group("m").replace("\\'", "'").replace('\\"', '"') if found else text
    core = _NOISE.sub("", _SPACE.sub(" ", core).strip())
    core = _MODEL_TAG.sub("", _PREFIXES.sub("", core).strip())
    return shorten(core or _SPACE.sub(" ", text).strip(), limit)
