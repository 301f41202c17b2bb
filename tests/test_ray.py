"""The Ray engine for real: a local Ray head on 127.0.0.1, the embedded model on its workers, and the
same kept set as the local engine's."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import synthboot  # noqa: E402
from synthboot.engines.ray import RayCallEngine, connect  # noqa: E402
from synthboot.engines.ray_minhash import minhash_candidates, minhash_pairs  # noqa: E402
from synthboot.stages.dedup import MinHashLayer  # noqa: E402
from synthboot.store import Store  # noqa: E402
from synthboot.status import kept_candidates  # noqa: E402

from .conftest import t0_prompts  # noqa: E402
from .support.openai_server import serve  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    # A small head on loopback: two CPUs, a 100 MB object store, no dashboard.
    ray.shutdown()
    connect(num_cpus=2, object_store_mb=100)
    yield
    ray.shutdown()


def _kept(run_dir) -> list[str]:
    with Store(run_dir) as store:
        return sorted(json.dumps(c.fields, sort_keys=True) for c in kept_candidates(store))


def _decisions(run_dir) -> list[tuple]:
    with sqlite3.connect(run_dir / "synthboot.db") as db:
        return sorted(db.execute("SELECT c.fields, d.stage, d.kept, d.reason FROM decisions d "
                                 "JOIN candidates c ON c.id = d.candidate_id").fetchall())


def test_ray_engine_matches_the_local_engine(ray_cluster, tiny_run, tiny_spec_path, tmp_path):
    """The tiny spec on the embedded model, its calls made by Ray workers, keeps what the local run kept."""
    result = synthboot.run(tiny_spec_path, tmp_path / "ray", engine="ray")
    assert result.lm_calls_made == 2  # both generation calls were new, and made on the cluster
    with Store(tmp_path / "ray") as store:
        assert store.call_totals()[0].calls == 2
    assert _kept(tmp_path / "ray") == _kept(tiny_run)
    assert _kept(tiny_run)  # a comparison of two empty sets would prove nothing
    assert _decisions(tmp_path / "ray") == _decisions(tiny_run)

    again = synthboot.run(tiny_spec_path, tmp_path / "ray", engine="ray")
    assert again.lm_calls_made == 0  # resume and re-runs read the store on the driver, as locally


def test_remote_lm_with_judge_on_ray_matches_local(ray_cluster, tiny_spec_path, tmp_path):
    """A remote (loopback) generator, verifier and judge: calls made by Ray tasks, limits and retries on the
    driver, the same decisions as the local engine, and each request sent once."""
    # The semantic dedup layer is off here: dedup on Ray is the first test's; this one is about calls.
    spec = synthboot.load_spec(tiny_spec_path, overrides={"generate.per_topic": 4, "judge.enabled": True,
                                                          "verify.enabled": True,
                                                          # The server's made-up answers never resemble a
                                                          # re-prediction: agree on any text, so the judge
                                                          # still sees candidates.
                                                          "verify.text_threshold": 0.0,
                                                          "generate.requests_per_minute": 6000,
                                                          "dedup.semantic.enabled": False})
    runs = {}
    for engine in ("local", "ray"):
        with serve(script=["429:0.2", "503"]) as url:
            result = synthboot.run(spec, tmp_path / engine, lm="openai/fake", api_base=url, engine=engine,
                                   concurrency=3)
            runs[engine] = (result, url.server.count(), {r.fingerprint for r in url.server.answered()})
    (local, local_requests, local_prints), (remote, ray_requests, ray_prints) = runs["local"], runs["ray"]
    assert remote.generate.tasks_failed == 0 and remote.lm_calls_made == local.lm_calls_made > 4
    assert ray_requests == local_requests == local.lm_calls_made + 2  # every call once, plus the two faults
    assert ray_prints == local_prints  # the very same requests reached the server
    assert _decisions(tmp_path / "ray") == _decisions(tmp_path / "local")
    with Store(tmp_path / "ray") as store:
        totals = {t.name: t.calls for t in store.call_totals("purpose")}
        assert totals.get("judge", 0) > 0 and totals.get("verify", 0) > 0


def test_topup_rounds_on_ray_match_local(ray_cluster, tiny_spec_path, tmp_path):
    """Top-up rounds (generation aimed at what is short) go through the cluster like round 0."""
    spec = synthboot.load_spec(tiny_spec_path, overrides={"generate.per_topic": 1, "count": 6,
                                                          "topup.max_rounds": 3, "dedup.semantic.enabled": False})
    runs = {}
    for engine in ("local", "ray"):
        with serve() as url:
            result = synthboot.run(spec, tmp_path / engine, lm="openai/fake", api_base=url, engine=engine,
                                   concurrency=2)
            runs[engine] = (result, {r.fingerprint for r in url.server.answered()})
    (local, local_prints), (remote, ray_prints) = runs["local"], runs["ray"]
    assert remote.topup is not None and remote.topup.rounds >= 1 and remote.topup.reached
    assert (remote.topup.rounds, remote.topup.kept) == (local.topup.rounds, local.topup.kept)
    assert ray_prints == local_prints  # the same requests, top-up batches included
    assert _decisions(tmp_path / "ray") == _decisions(tmp_path / "local")
    with Store(tmp_path / "ray") as store:
        assert store.task_keys("gen:topup1:%")


def test_lm_calls_really_run_on_workers(ray_cluster):
    """The engine's remote function runs in another process: the driver does not load the model."""
    from synthboot.engines.ray import LMRecipe, _worker_models

    engine = RayCallEngine(LMRecipe("local"), None)
    import dspy

    lm = dspy.LM("local/smollm2", engine=engine, num_retries=0, cache=False, max_tokens=8, temperature=0.0)
    out = lm("Say hi.")
    assert isinstance(out[0], str)
    assert LMRecipe("local") not in _worker_models  # built in a worker, never here


def test_distributed_minhash_equals_the_local_layer(ray_cluster):
    """Band bucketing as a distributed group-by gives exactly the local layer's pairs and scores."""
    texts = t0_prompts(600)
    layer = MinHashLayer(threshold=0.85)
    stats: dict = {}
    there = minhash_pairs(texts, layer, stats=stats)
    assert len(there) > 100
    assert stats["blocks"] > 1 and stats["partitions"] > 1
    assert np.array_equal(there, minhash_pairs(texts, layer, run_local=True))
    assert minhash_candidates(texts, layer) == layer.candidates(texts)
