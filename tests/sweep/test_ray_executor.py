"""The Ray executor on a local Ray instance (2 CPUs, loopback): same trials as the local executor,
calls that raise, and Ray's own retry when a worker dies."""

from __future__ import annotations

import importlib.util
import math
import os

import pytest

# ray is not imported here: the executor sets Ray's loopback mode before the first import
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the ray extra is not installed (make test installs it)")

PARAMS = ["execution.params.half_spread_ticks=1,2", "execution.params.skew_ticks_per_unit=0,0.5"]
TIMINGS = {"wall_s", "run_wall_s", "events_per_s", "decisions_per_s", "decision_latency_us_p50", "decision_latency_us_p99"}


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; executors made while it runs use it."""
    from cmm_bt.executors.ray_executor import RayExecutor

    ex = RayExecutor(2, max_retries=1)
    yield ex
    ex.close()


def _comparable(metrics):
    """Metrics without timings, NaN as None (NaN != NaN)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items() if k not in TIMINGS}


def _drain(ex):
    out = {}
    while ex.pending:
        for o in ex.wait(timeout=5):
            out[o.task_id] = o
    return out


def test_calls_and_their_failures(ray_instance):
    ex = ray_instance
    ex.submit("good", math.sqrt, 9.0)
    ex.submit("bad", math.sqrt, -1.0)
    ex.submit("die", os._exit, 3)
    res = _drain(ex)
    assert res["good"].ok and res["good"].value == 3.0 and res["good"].worker.split("@")[0] != str(os.getpid())
    assert not res["bad"].ok and res["bad"].error.type == "ValueError" and not res["bad"].error.lost
    assert not res["die"].ok and res["die"].error.lost and "worker died" in res["die"].error.message


def test_ray_and_local_executors_give_the_same_trial_metrics(ray_instance, sweep, flaky_strategy, tmp_path):
    local = sweep(flaky_strategy, tmp_path / "local", PARAMS, executor="local")
    ray = sweep(flaky_strategy, tmp_path / "ray", PARAMS, executor="ray")
    assert [r.name for r in ray.records] == [r.name for r in local.records]
    assert all(r.status == "ok" for r in ray.records)
    for a, b in zip(local.records, ray.records):
        assert _comparable(a.metrics) == _comparable(b.metrics)
        assert b.run_dir.startswith(str(tmp_path / "ray"))
    assert ray.best.name == local.best.name


def test_a_ray_worker_killed_mid_trial_is_retried_by_ray(ray_instance, sweep, flaky_strategy, tmp_path):
    marker = tmp_path / "died-once"
    res = sweep(flaky_strategy, tmp_path / "sw", [f"execution.params.die_once={marker}", "execution.params.half_spread_ticks=1,2"],
                executor="ray", retries=1)
    assert marker.exists()
    assert [r.status for r in res.records] == ["ok", "ok"]
    assert sorted(r.attempts for r in res.records) == [1, 2]  # started twice: Ray retried the one whose worker died
