"""SIGKILL a real `synthboot run` at random moments and resume: nothing lost, nothing repeated.

Against the loopback server (fast, deterministic replies) the run is killed 20 times in a row and
then finished; the result must equal an uninterrupted run's, the store must pass
`PRAGMA integrity_check` after every kill, and no LM call the store already held may reach the
server again (only calls in flight at a kill may run twice). Once more on the embedded model.
"""

from __future__ import annotations

import random
import re
import signal

import pytest

import synthboot
from synthboot.status import run_status
from tests.support.openai_server import default_content, serve
from tests.support.procs import (candidates_by_slot, integrity, loopback_spec, rows, run, run_args, start, stop,
                                 wait_for)

KILLS = 20


def test_kill_loop_against_the_loopback_server(tmp_path):
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=12)  # 30 generation calls, then 60 judge calls
    with serve() as ref_url:
        synthboot.run(spec, tmp_path / "reference", lm="openai/fake", api_base=ref_url)
        reference_calls = ref_url.server.count()

    rng = random.Random(20240607)
    run_dir = tmp_path / "run"
    snapshots: list[tuple[int, set[str]]] = []  # (server requests so far, reply texts the store held) per kill
    with serve(delay_s=0.03) as url:
        server = url.server
        kills = mid_work = 0
        while kills < KILLS:
            proc = start(run_args(spec, run_dir, url))
            before = server.count()
            # A random moment: after 0-5 of this process's requests (0: while it starts up or
            # runs the filter stages), plus up to 0.3 s.
            target = before + rng.randint(0, 5)
            wait_for(lambda: server.count() >= target, 120, proc)
            wait_for(lambda: False, rng.uniform(0, 0.3), proc)
            code, _, err = stop(proc, signal.SIGKILL)
            assert code in (-signal.SIGKILL, 0), err
            kills += code == -signal.SIGKILL
            mid_work += server.count() > before
            assert integrity(run_dir) == "ok"
            snapshots.append((server.count(), {t for (t,) in rows(run_dir, "SELECT text FROM lm_calls")}))
        assert mid_work >= KILLS // 2, mid_work  # most kills landed while the run was talking to the server
        final = run(run_args(spec, run_dir, url))
        assert final.returncode == 0, final.stderr
        requests = list(server.requests)

    assert integrity(run_dir) == "ok"
    # Every candidate exactly once, the same as the uninterrupted run's.
    got, want = candidates_by_slot(run_dir), candidates_by_slot(tmp_path / "reference")
    assert got == want and len(want) == 60
    assert rows(run_dir, "SELECT COUNT(*), COUNT(DISTINCT task_key || ':' || item_index) FROM candidates "
                         "WHERE origin = 'lm'")[0] == (60, 60)
    assert rows(run_dir, "SELECT COUNT(*) FROM lm_calls")[0][0] == reference_calls
    # No call the store already held was sent again after a kill.
    for boundary, stored in snapshots:
        # (A request cut off mid-send by a kill has no readable body: it never reached the LM.)
        repeated = [r.n for r in requests[boundary:] if r.body and default_content(r.body) in stored]
        assert not repeated, f"requests {repeated} repeat calls stored before request {boundary}"
    # Only calls in flight at a kill ran twice: at most `concurrency` (2) per kill.
    assert len(requests) - reference_calls <= 2 * KILLS
    status, ref_status = run_status(run_dir), run_status(tmp_path / "reference")
    assert status.funnel.kept == ref_status.funnel.kept == 60 and status.funnel.pending == 0
    assert status.funnel.splits == ref_status.funnel.splits


@pytest.mark.slow
def test_kill_on_the_embedded_model(tmp_path, tiny_spec_path):
    # Two one-example calls, short replies: the smallest run with a call to finish and one to kill.
    tiny_spec_path.write_text(tiny_spec_path.read_text().replace(
        "generate: {per_topic: 2, per_call: 2, max_tokens: 400", "generate: {per_topic: 1, per_call: 1, max_tokens: 200"))
    assert "per_call: 1" in tiny_spec_path.read_text()
    run_dir = tmp_path / "run"
    proc = start(run_args(tiny_spec_path, run_dir))
    # Kill the moment the first real LM call is in the store (the other is still generating).
    assert wait_for(lambda: bool(rows(run_dir, "SELECT 1 FROM lm_calls")), 600, proc, every=0.05), \
        "the run ended before its first LM call was stored"
    code, _, _ = stop(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert integrity(run_dir) == "ok"
    stored = len(rows(run_dir, "SELECT key FROM lm_calls"))

    resumed = run(run_args(tiny_spec_path, run_dir), timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    made = int(re.search(r"LM calls this run: (\d+) made", resumed.stdout).group(1))
    assert made == 2 - stored  # the finished call was not made again
    assert integrity(run_dir) == "ok"
    assert rows(run_dir, "SELECT COUNT(*) FROM tasks WHERE status = 'done'")[0][0] == 2
    per_task = rows(run_dir, "SELECT task_key, COUNT(*), COUNT(DISTINCT item_index) FROM candidates "
                             "WHERE origin = 'lm' GROUP BY task_key")
    assert len(per_task) == 2 and all(n == distinct >= 1 for _, n, distinct in per_task)
