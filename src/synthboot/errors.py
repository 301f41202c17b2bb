"""One family of user errors.

Anything raised as a `SynthbootError` is the user's to fix (a bad spec, a bad argument, a missing
key, a server that does not answer, a full disk). The CLI prints its message on one line and exits
with the error's `exit_code`; every other exception is a bug and exits with code 1.

Exit codes (documented in the README; scripts rely on them):
  0 success; 1 internal error (a bug; traceback in synthboot-error.log); 2 a bad spec, argument or
  input file; 3 the LM provider is unreachable or refused the requests (down, bad key, no credit,
  unknown model); 4 the run is incomplete (failed tasks, undecided candidates, budget reached):
  what finished is stored and the same command resumes; 130 interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_PROVIDER, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class SynthbootError(Exception):
    """A problem the user can fix; its message is shown on one line (shortened if long)."""

    exit_code = EXIT_USAGE
    detail: str | None = None  # more than the line can hold (scrubbed of secrets): goes to synthboot-error.log


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


class ProviderError(LMUnavailableError):
    """The provider is unreachable or refuses every request (down, bad key, no credit, unknown model)."""

    exit_code = EXIT_PROVIDER


class RunIncompleteError(SynthbootError):
    """Some LM calls failed after their retries; what finished is stored and a re-run retries the rest."""

    exit_code = EXIT_INCOMPLETE


class StoreWriteError(SynthbootError):
    """The run store could not be written (disk full, read-only, permissions)."""


class BudgetExhausted(SynthbootError):
    """The run reached its token or money budget; it resumes with a higher budget."""

    exit_code = EXIT_INCOMPLETE
