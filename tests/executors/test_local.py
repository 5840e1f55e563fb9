"""The local executor: worker reuse and recycling, exceptions as results, retries when a worker dies."""

from __future__ import annotations

import math
import os
import time

import pytest

from cmm_bt.errors import CmmBtError
from cmm_bt.executors import make_executor
from cmm_bt.executors.local import LocalExecutor


def _drain(ex):
    out = {}
    while ex.pending:
        for o in ex.wait(timeout=5):
            out[o.task_id] = o
    return out


def test_workers_are_reused_and_recycled_after_their_share_of_calls():
    with LocalExecutor(2, max_tasks_per_worker=2) as ex:
        res = ex.run_all({f"t{i}": (os.getpid, ()) for i in range(8)})
        pids = [res[f"t{i}"].value for i in range(8)]
        assert all(res[f"t{i}"].ok for i in range(8))
        assert os.getpid() not in pids
        assert max(pids.count(p) for p in set(pids)) <= 2  # a worker runs two calls at most, then is replaced
        assert len(set(pids)) >= 4 and ex.workers_started == len(set(pids))
    with LocalExecutor(2, max_tasks_per_worker=0) as ex:  # never recycled: two processes for every call
        res = ex.run_all({f"t{i}": (os.getpid, ()) for i in range(6)})
        assert len({o.value for o in res.values()}) <= 2 and ex.workers_started == 2


def test_at_most_slots_calls_run_at_once():
    with LocalExecutor(2) as ex:
        t0 = time.monotonic()
        res = ex.run_all({f"s{i}": (time.sleep, (0.6,)) for i in range(4)})
        assert all(o.ok for o in res.values())
        assert time.monotonic() - t0 >= 1.2  # 4 sleeps of 0.6 s on 2 workers


def test_a_call_that_raises_is_a_failed_outcome_and_the_worker_lives_on():
    with LocalExecutor(1) as ex:
        res = ex.run_all({"bad": (math.sqrt, (-1.0,)), "good": (math.sqrt, (4.0,))})
        assert not res["bad"].ok and res["bad"].error.type == "ValueError" and "math domain error" in res["bad"].error.message
        assert res["bad"].error.exit_code == 1 and "Traceback" in res["bad"].error.traceback
        assert res["good"].ok and res["good"].value == 2.0
        assert ex.workers_started == 1


def test_a_config_error_in_a_worker_keeps_exit_code_2():
    from cmm_bt.executors.jobs import RunJob, run_job

    with LocalExecutor(1) as ex:
        res = ex.run_all({"j": (run_job, (RunJob(strategy="/nonexistent/strategy.yaml", out_dir="/nonexistent/out"),))})
    err = res["j"].error
    assert err.exit_code == 2 and "file not found" in err.message
    with pytest.raises(CmmBtError, match="file not found"):
        err.reraise()


def test_a_dead_worker_has_its_call_retried_then_reported_lost():
    with LocalExecutor(2, max_retries=2) as ex:
        ex.submit("die", os._exit, 7)
        ex.submit("ok", os.getpid)
        res = _drain(ex)
        assert res["ok"].ok
        lost = res["die"]
        assert not lost.ok and lost.error.lost and lost.attempts == 3
        assert "exit code 7" in lost.error.message
        assert sum("retrying" in n for n in ex.notices) == 2 and "giving up after 3 attempts" in ex.notices[-1]


def test_a_worker_killed_from_outside_is_replaced_and_its_call_rerun():
    with LocalExecutor(1, max_retries=1) as ex:
        ex.submit("warm", os.getpid)
        (first,) = ex.wait(timeout=30)
        pid = first.value
        ex.submit("slow", time.sleep, 1.5)
        time.sleep(0.3)
        os.kill(pid, 9)
        res = _drain(ex)
        assert res["slow"].ok and res["slow"].attempts == 2
        assert ex.worker_pids() and pid not in ex.worker_pids()


def test_unpicklable_calls_fail_without_reaching_a_worker():
    with LocalExecutor(1) as ex:
        ex.submit("lambda", lambda: 1)
        (o,) = ex.wait(timeout=5)
        assert not o.ok and o.attempts == 0 and ex.workers_started == 0


def test_make_executor_checks_its_options():
    with pytest.raises(CmmBtError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(CmmBtError, match="--workers"):
        make_executor("local", workers=0)
    with pytest.raises(CmmBtError, match="needs --executor ray"):
        make_executor("local", ray_address="127.0.0.1:6379")


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(CmmBtError, match=r"pip install 'cmm-bt\[ray\]'"):
        make_executor("ray")


def test_workers_cap_their_thread_pools():
    import numba

    with LocalExecutor(1, threads_per_worker=1) as ex:
        res = ex.run_all({"omp": (os.getenv, ("OMP_NUM_THREADS",)), "numba": (numba.get_num_threads, ())})
    assert res["omp"].value == "1"
    assert res["numba"].value == 1
