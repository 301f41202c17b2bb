"""Rate limits and retries: unit checks on a fake clock, then the real thing against a loopback
OpenAI-compatible server that injects 429s, 5xx and hangs (tests/support/openai_server.py)."""

from __future__ import annotations

import random
import sqlite3

import pytest

import synthboot
from synthboot.cli import main
from synthboot.errors import SpecError
from synthboot.lm import make_lm
from synthboot.lm.calls import store_as_lm_cache
from synthboot.lm.limits import Limits, RateLimiter, retry_delay
from synthboot.store import Store

from .support.openai_server import serve


@pytest.fixture
def store_cache(tmp_path):
    """LM calls made directly in a test go through a fresh run store, as in a run (never DSPy's disk cache)."""
    with Store(tmp_path / "calls", create=True) as store, store_as_lm_cache(store):
        yield store


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_retry_delay_honours_retry_after_and_jitters_backoff():
    limits = Limits(backoff_base_s=1.0, backoff_max_s=8.0)
    rng = random.Random(0)
    waits = [retry_delay(0, 3.0, limits, rng) for _ in range(200)]
    assert min(waits) >= 3.0 and max(waits) <= 3.3
    for attempt, ceiling in [(0, 1.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        draws = [retry_delay(attempt, None, limits, rng) for _ in range(400)]
        assert 0 <= min(draws) and max(draws) <= ceiling
        # Full jitter spreads retries over the whole window instead of one instant.
        assert max(draws) - min(draws) > 0.8 * ceiling


def test_requests_per_minute_paces_after_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(Limits(requests_per_minute=60), clock=clock, sleep=clock.sleep)
    for _ in range(10):  # ten seconds' worth go at once
        limiter.acquire()
    assert clock.t == 0
    for _ in range(5):
        limiter.acquire()
    assert clock.t == pytest.approx(5.0)


def test_tokens_per_minute_counts_the_real_usage():
    clock = FakeClock()
    limiter = RateLimiter(Limits(tokens_per_minute=6000), clock=clock, sleep=clock.sleep)  # 100 tokens/s, 1000 burst
    limiter.acquire(1000)
    limiter.settle(1000, 400)  # the reply used fewer tokens than estimated: 600 come back
    limiter.acquire(600)
    assert clock.t == 0
    limiter.acquire(500)  # empty bucket: 5 s to refill 500 tokens
    assert clock.t == pytest.approx(5.0)
    limiter.acquire(5000)  # bigger than the bucket: waits for a full bucket, then runs into debt
    assert clock.t == pytest.approx(15.0)


def test_cool_down_holds_back_every_caller():
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    limiter.cool_down(2.5)
    limiter.acquire()
    assert clock.t == pytest.approx(2.5)


def test_429_5xx_and_timeouts_are_retried_with_retry_after_honoured(store_cache):
    with serve(script=["429:1", "500", "hang:3", "503", "ok"]) as url:
        lm = make_lm("openai/fake", api_base=url, max_tokens=50, limits=Limits(max_retries=5, timeout_s=0.5,
                                                                              backoff_base_s=0.05))
        out = lm("say something")
        reqs = url.server.requests
    assert out and isinstance(out[0], str)
    assert [r.fault for r in reqs] == ["429:1", "500", "hang:3", "503", "ok"]
    assert lm.engine.retries == 4
    assert reqs[1].started - reqs[0].started >= 1.0  # Retry-After: 1
    assert reqs[3].started - reqs[2].started >= 0.5  # the client gave up on the hang at its timeout


def test_errors_that_are_not_transient_are_not_retried_and_retries_run_out(store_cache):
    with serve(script=["empty", "500", "500", "500", "500"]) as url:
        lm = make_lm("openai/fake", api_base=url, max_tokens=50, limits=Limits(max_retries=2, backoff_base_s=0.01))
        with pytest.raises(Exception):
            lm("first")
        assert url.server.count() == 1
        with pytest.raises(Exception) as info:
            lm("second")
        assert url.server.count() == 4  # one try and two retries
    assert "500" in str(info.value) or "injected" in str(info.value)


def test_requests_per_minute_against_the_server(store_cache):
    # 120/min: a burst of 20, then one request every 0.5 s.
    with serve() as url:
        lm = make_lm("openai/fake", api_base=url, max_tokens=50, limits=Limits(requests_per_minute=120))
        for i in range(23):
            lm(f"call {i}")
        starts = [r.started for r in url.server.requests]
    # At most 20 + 2 * t requests may start in the first t seconds, however fast or loaded the machine is.
    assert starts[22] - starts[0] >= 1.4


def test_pipeline_under_faults_stores_every_task_once_and_reruns_with_zero_calls(tmp_path, tiny_spec_path):
    faults = lambda n, body: {0: "429:1", 1: "503", 3: "hang:3", 5: "500"}.get(n)  # noqa: E731
    spec = synthboot.load_spec(tiny_spec_path, overrides={"generate.per_topic": 6, "generate.timeout_s": 1.0,
                                                          "generate.requests_per_minute": 6000,
                                                          "dedup.semantic.enabled": False})
    with serve(script=faults) as url:
        result = synthboot.run(spec, tmp_path / "run", lm="openai/fake", api_base=url, concurrency=4)
        first = url.server.count()
        again = synthboot.run(spec, tmp_path / "run", lm="openai/fake", api_base=url, concurrency=4)
        assert url.server.count() == first  # the re-run is answered from the store
    assert result.generate.tasks_run == 6 and result.generate.tasks_failed == 0
    assert first == 6 + 4  # every task once, plus the four injected faults
    assert again.lm_calls_made == 0
    with sqlite3.connect(tmp_path / "run" / "synthboot.db") as db:
        assert db.execute("SELECT COUNT(*) FROM lm_calls").fetchone()[0] == 6
        assert db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'done'").fetchone()[0] == 6
        assert db.execute("SELECT COUNT(*) FROM candidates WHERE origin = 'lm'").fetchone()[0] == 12


def test_cli_rate_flags(tmp_path, tiny_spec_path):
    tiny_spec_path.write_text(tiny_spec_path.read_text() + "dedup: {semantic: false}\n")  # no embedder to load
    with serve() as url:
        code = main(["run", str(tiny_spec_path), "--out", str(tmp_path / "run"), "--lm", "openai/fake",
                     "--api-base", url, "--rpm", "600", "--tpm", "1000000", "--concurrency", "4"])
        assert code == 0
        assert url.server.count() == 2
    assert main(["run", str(tiny_spec_path), "--out", str(tmp_path / "r2"), "--rpm", "-1"]) == 2


def test_spec_rejects_bad_limits(tiny_spec_path):
    with pytest.raises(SpecError, match="requests_per_minute"):
        synthboot.load_spec(tiny_spec_path, overrides={"generate.requests_per_minute": 0})
