"""Every fault class from a real HTTP server: the run completes (or stops with a clear message),
the store counts each failed attempt, and after a resume nothing is lost."""

from __future__ import annotations

import pytest

from tests.support.faults import SCENARIOS, reference_run, run_scenario
from tests.support.openai_server import serve
from tests.support.procs import rows, run, run_args


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("faults-ref"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_class(scenario, reference, tmp_path):
    outcome = run_scenario(scenario, tmp_path, reference)
    assert outcome.injected >= 1, outcome
    assert outcome.integrity == "ok"
    assert outcome.lost == 0, outcome
    assert outcome.pending == 0, outcome
    if scenario.fault == "bad_content":
        # The LM's unparseable answer to one batch stands, as one parse-error candidate, for its two items.
        assert outcome.parse_errors == 1 and outcome.changed == 1, outcome
        assert outcome.candidates == len(reference) - 1, outcome
    else:
        assert outcome.changed == 0 and outcome.candidates == len(reference), outcome
    if scenario.expect == "completes":
        assert outcome.first_run == "completed", outcome
    elif scenario.expect == "incomplete":
        # A call that failed for good fails its task only: the others finish, the re-run retries it.
        assert outcome.first_run == "incomplete" and outcome.task_failures >= 1, outcome
    else:
        assert outcome.first_run == "stopped", outcome
        assert "in a row" in outcome.message and "run the same command again" in outcome.message, outcome.message
    if scenario.fault in ("429", "500", "502", "503", "hang", "close") and scenario.expect == "completes":
        # Every failed attempt is in the store, tied to the call that then succeeded.
        assert sum(outcome.attempt_failures.values()) == outcome.injected, outcome
        assert outcome.extra["retried_calls_stored"] >= 1, outcome


def test_retry_after_is_honoured_and_recorded(tmp_path):
    from tests.support.faults import write_spec

    import synthboot

    spec = write_spec(tmp_path)
    with serve(script=["429:1"]) as url:
        synthboot.run(spec, tmp_path / "run", lm="openai/fake", api_base=url)
        first, second = url.server.requests[0], next(r for r in url.server.requests[1:]
                                                      if r.fingerprint == url.server.requests[0].fingerprint)
    assert second.started - first.started >= 1.0  # waited at least the server's Retry-After
    (retry_after, delay, retried, status), = rows(tmp_path / "run", "SELECT retry_after, delay_s, retried, status "
                                                                   "FROM lm_attempt_failures")
    assert retry_after == 1.0 and delay >= 1.0 and retried == 1 and status == 429
    from synthboot.status import run_status

    assert run_status(tmp_path / "run").calls.retried_attempts == 1  # `synthboot status` shows it


def test_cli_stops_with_one_line_when_the_server_is_down(tmp_path):
    """A real process against a port nothing listens on: exit 3, one line saying how to resume."""
    from tests.support.faults import write_spec
    from tests.support.openai_server import free_port

    spec = write_spec(tmp_path)
    proc = run(run_args(spec, tmp_path / "run", f"http://127.0.0.1:{free_port()}/v1"), timeout=300)
    assert proc.returncode == 3, proc.stderr  # EXIT_PROVIDER: the server is unreachable
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "in a row" in lines[0] and "resume" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
