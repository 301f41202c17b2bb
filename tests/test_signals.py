"""Ctrl-C, SIGTERM, a full disk and a second process on the same run: real processes, clean ends."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time

import pytest

from tests.support.openai_server import serve
from tests.support.procs import (candidates_by_slot, integrity, loopback_spec, rows, run, run_args, start, stop,
                                 wait_for)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_resume_finishes(sig, tmp_path):
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=8)  # 20 generation calls
    run_dir = tmp_path / "run"
    with serve(delay_s=0.5) as url:
        proc = start(run_args(spec, run_dir, url))
        assert wait_for(lambda: bool(rows(run_dir, "SELECT 1 FROM tasks WHERE status = 'done'")), 120, proc)
        sent = time.monotonic()
        code, out, err = stop(proc, sig)
        stopped_in = time.monotonic() - sent
        assert code == 130, err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("stopped; everything finished so far is in the store; resume with: synthboot run "), err
        assert f"--out {run_dir}" in lines[-1] and "Traceback" not in err
        assert stopped_in < 5, stopped_in  # in-flight calls are not waited for past their reply
        assert integrity(run_dir) == "ok"
        done_before = len(rows(run_dir, "SELECT key FROM tasks WHERE status = 'done'"))
        assert 1 <= done_before < 20

        url.server.delay_s = 0.0  # the rest quickly
        resumed = run(run_args(spec, run_dir, url))
        assert resumed.returncode == 0, resumed.stderr
        made = int(resumed.stdout.split("LM calls this run: ")[1].split(" made")[0])
    assert rows(run_dir, "SELECT COUNT(*) FROM tasks WHERE status = 'done'")[0][0] == 20
    assert len(candidates_by_slot(run_dir)) == 40
    assert made <= 20 - done_before + 40  # generation left over, plus the judge's 40 verdicts: nothing redone
    assert integrity(run_dir) == "ok"


def test_second_run_on_the_same_directory_refuses(tmp_path):
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=8)
    run_dir = tmp_path / "run"
    with serve(delay_s=0.5) as url:
        first = start(run_args(spec, run_dir, url))
        try:
            assert wait_for(lambda: url.server.count() >= 1, 120, first)
            second = run(run_args(spec, run_dir, url), timeout=120)
            assert second.returncode == 2, second.stderr
            line = second.stderr.strip().splitlines()[-1]
            assert line.startswith("error: ") and "in use by pid" in line and str(first.pid) in line, second.stderr
        finally:
            code, _, err = stop(first, signal.SIGINT)
        assert code == 130, err
    assert integrity(run_dir) == "ok"


def _fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of killing
    return apply


def test_disk_full_is_a_clear_error_and_the_run_resumes(tmp_path):
    """The store's file may not grow past a limit (RLIMIT_FSIZE, as on a full disk): a one-line error
    naming the store, an intact database, and a resume that finishes once the limit is gone."""
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=20)  # 50 calls: enough to outgrow the limit
    run_dir = tmp_path / "run"
    with serve() as url:
        full = run(run_args(spec, run_dir, url), preexec_fn=_fsize_limit(160_000), timeout=300)
        assert full.returncode == 2, (full.returncode, full.stderr[-2000:])
        line = full.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and str(run_dir / "synthboot.db") in line, full.stderr[-2000:]
        assert "Traceback" not in full.stderr
        assert integrity(run_dir) == "ok"
        kept_calls = rows(run_dir, "SELECT COUNT(*) FROM lm_calls")[0][0]
        assert kept_calls < 50 + 100

        resumed = run(run_args(spec, run_dir, url), timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert integrity(run_dir) == "ok"
    assert len(candidates_by_slot(run_dir)) == 100
    assert rows(run_dir, "SELECT COUNT(*) FROM tasks WHERE status = 'done'")[0][0] == 50


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs")
def test_disk_full_on_a_real_tmpfs(tmp_path):
    """The same on a real filesystem that runs out of space (a 1 MB tmpfs)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        spec = loopback_spec(tmp_path / "spec.yaml", per_topic=40)
        run_dir = mnt / "run"
        with serve() as url:
            full = run(run_args(spec, run_dir, url), timeout=300)
            assert full.returncode == 2, full.stderr[-2000:]
            line = full.stderr.strip().splitlines()[-1]
            assert line.startswith("error: ") and str(run_dir / "synthboot.db") in line, full.stderr[-2000:]
            assert integrity(run_dir) == "ok"
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            resumed = run(run_args(spec, run_dir, url), timeout=300)
            assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert integrity(run_dir) == "ok"
        assert len(candidates_by_slot(run_dir)) == 200
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_ctrl_c_does_not_wait_for_hung_calls(tmp_path):
    """Both workers are stuck on a server that never answers: Ctrl-C still stops at once."""
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=4)
    run_dir = tmp_path / "run"
    with serve(script=lambda n, body: "hang:60") as url:
        proc = start(run_args(spec, run_dir, url))
        assert wait_for(lambda: url.server.count() >= 2, 120, proc)
        sent = time.monotonic()
        code, _, err = stop(proc, signal.SIGINT)
        assert code == 130 and "resume with:" in err.strip().splitlines()[-1], err
        assert time.monotonic() - sent < 5
        assert integrity(run_dir) == "ok"
        url.server.set_script(None)
        resumed = run(run_args(spec, run_dir, url))
        assert resumed.returncode == 0, resumed.stderr
    assert len(candidates_by_slot(run_dir)) == 20
