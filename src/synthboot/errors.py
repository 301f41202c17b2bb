"""One family of user errors.

Anything raised as a `SynthbootError` is the user's to fix (a bad spec, a bad argument, a missing
key, a server that does not answer, a full disk). The CLI prints its message on one line and exits
with code 2; every other exception is a bug and exits with code 1.
"""

from __future__ import annotations


class SynthbootError(Exception):
    """A problem the user can fix; its message is shown as is, on one line."""

    exit_code = 2


class SpecError(SynthbootError):
    """The spec file is malformed or inconsistent. Names the field and, for YAML, the line."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None, line: int | None = None):
        self.path, self.field, self.line = path, field, line
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        named = f"{field}: " if field else ""
        # One line, always: messages quote user text and library errors, which may hold newlines.
        super().__init__(" ".join(f"{prefix}{named}{message}".splitlines()))


class RunLockedError(SynthbootError):
    """Another process is running on the same run directory."""


class RunMismatchError(SynthbootError):
    """The run directory holds a run of another task; adding to it would mix two datasets."""


class RunNotFoundError(SynthbootError):
    """The run directory holds no synthboot store."""


class LMUnavailableError(SynthbootError):
    """The LM cannot be reached or configured (no server, no key, no model file)."""


class RunIncompleteError(SynthbootError):
    """Some LM calls failed after their retries; what finished is stored and a re-run retries the rest."""


class StoreWriteError(SynthbootError):
    """The run store could not be written (disk full, read-only, permissions)."""


class BudgetExhausted(SynthbootError):
    """The run reached its token or money budget; it resumes with a higher budget."""
