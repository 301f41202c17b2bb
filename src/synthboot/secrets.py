"""Keep credentials out of everything synthboot writes: the store, logs, reports, exports, errors.

Keys reach synthboot only through the environment (or a keyring, via LiteLLM and the provider
SDKs); requests are stored without their credential fields (`synthboot.lm.calls.redact`). What
remains is text that may quote a key back: a provider's error message ("Incorrect API key
provided: sk-...") or a traceback. `scrub` removes the values of the environment's secret
variables and anything shaped like a common API key from such text before it is written.
"""

from __future__ import annotations

import os
import re

REDACTED = "<redacted>"

# Names of environment variables that hold credentials (OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_...).
SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
# Shapes of provider keys, for keys that did not come from this process's environment.
KEY_SHAPES = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|hf_[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}"
    r"|xai-[A-Za-z0-9]{20,}|r8_[A-Za-z0-9]{20,})\b"
    r"|(?i:bearer\s+)[A-Za-z0-9._\-]{16,}")
# Shorter values are too likely to be ordinary words (`TOKEN=1`); they are left alone.
MIN_SECRET_LENGTH = 8


def secret_values() -> list[str]:
    """The values of the environment's credential variables, longest first."""
    values = {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """`text` without any credential in it."""
    if not text:
        return text
    for value in secret_values():
        text = text.replace(value, REDACTED)
    return KEY_SHAPES.sub(REDACTED, text)
