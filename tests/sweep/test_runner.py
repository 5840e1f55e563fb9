"""run_sweep end to end on real data: validation first, trial folders, resumption, failures, retries."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from cmm_bt.errors import CmmBtError

GRID = ["execution.params.half_spread_ticks=1,2", "execution.params.skew_ticks_per_unit=0,0.5"]


def _listing(out):
    return json.loads((out / "sweep.json").read_text())


def test_grid_sweep_writes_trials_listing_tables_and_best(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    res = sweep(flaky_strategy, out, GRID)
    doc = _listing(out)
    assert [t["status"] for t in doc["trials"]] == ["ok"] * 4
    assert {json.dumps(t["params"], sort_keys=True) for t in doc["trials"]} == {
        json.dumps({"execution.params.half_spread_ticks": h, "execution.params.skew_ticks_per_unit": s}, sort_keys=True)
        for h in (1, 2) for s in (0, 0.5)
    }
    for t in doc["trials"]:
        assert t["reused"] is False and t["attempts"] == 1
        assert (out / "trials" / t["name"] / "complete").is_file()
        assert t["run_dir"] == str(out / "trials" / t["name"])
        assert t["metrics"]["pnl_map"] == pytest.approx(json.loads((out / "trials" / t["name"] / "metrics.json").read_text())["pnl_map"])
        assert "split=validation" in t["overrides"]
    values = [t["value"] for t in doc["trials"]]
    assert doc["best"]["value"] == max(values) == res.best.value
    table = pd.read_parquet(out / "sweep.parquet")
    assert list(table["value"]) == sorted(values, reverse=True)
    assert "execution.params.half_spread_ticks" in table.columns
    md = (out / "sweep.md").read_text()
    assert "| # | half_spread_ticks | skew_ticks_per_unit | **pnl_map** |" in md
    # best.yaml extends the original with the winning overrides, and cmm-bt run accepts it
    best = (out / "best.yaml").read_text()
    assert "extends:" in best and "half_spread_ticks" in best


def test_best_yaml_runs_and_reproduces_the_best_trial(sweep, flaky_strategy, tmp_path, session, data_root):
    from cmm_bt.api import execute_run, prepare_run

    out = tmp_path / "sw"
    res = sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,3"])
    run, market = prepare_run(session, out / "best.yaml", overrides=["split=validation"], data_root=data_root)
    result = execute_run(session, run, market, write=False)
    assert result.metrics["pnl_map"] == pytest.approx(res.best.value)
    assert run.strategy.execution.params["half_spread_ticks"] == res.best.params["execution.params.half_spread_ticks"]


def test_a_bad_key_stops_the_sweep_before_any_trial_with_a_did_you_mean(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    with pytest.raises(CmmBtError) as err:
        sweep(flaky_strategy, out, ["execution.params.half_spread_tick=1,2"])
    msg = str(err.value)
    assert "flaky.yaml" in msg and "execution.params.half_spread_tick" in msg
    assert "did you mean 'execution.params.half_spread_ticks'" in msg
    assert not out.exists()
    with pytest.raises(CmmBtError, match="did you mean 'engine.maker_fee'"):
        sweep(flaky_strategy, out, ["engine.maker_fe=0,0.0001"])


def test_a_bad_value_in_any_trial_stops_the_sweep_before_the_first(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    with pytest.raises(CmmBtError) as err:  # the third value is invalid (must be > 0)
        sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,2,-1"])
    assert "execution.params.half_spread_ticks" in str(err.value) and "greater than 0" in str(err.value)
    assert "half_spread_ticks=-1" in str(err.value)
    assert not out.exists()
    with pytest.raises(CmmBtError, match="greater than 0"):  # tpe: a range end is checked too
        sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=uniform(-1,2)"], search="tpe", trials=2)


def test_rerun_reuses_complete_trials_and_runs_only_what_is_missing(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    first = sweep(flaky_strategy, out, GRID)
    names = [r.name for r in first.records]
    again = sweep(flaky_strategy, out, GRID)
    assert [r.reused for r in again.records] == [True] * 4
    assert [r.value for r in again.records] == [r.value for r in first.records]
    # an interrupted sweep: one trial folder lost, one listed as still running
    shutil.rmtree(out / "trials" / names[1])
    doc = _listing(out)
    doc["trials"][2]["status"] = "running"
    (out / "sweep.json").write_text(json.dumps(doc))
    mtime = (out / "trials" / names[0] / "metrics.json").stat().st_mtime_ns
    third = sweep(flaky_strategy, out, GRID)
    assert [r.reused for r in third.records] == [True, False, False, True]
    assert all(r.status == "ok" for r in third.records)
    assert (out / "trials" / names[0] / "metrics.json").stat().st_mtime_ns == mtime
    assert [r.value for r in third.records] == pytest.approx([r.value for r in first.records])
    assert [t["reused"] for t in _listing(out)["trials"]] == [True, False, False, True]


def test_another_configuration_in_the_same_folder_is_refused(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,2"])
    with pytest.raises(CmmBtError, match="another configuration"):
        sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,2"], overrides=["engine.maker_fee=0.0001"])


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    res = sweep(flaky_strategy, out, ["execution.params.fail=false,true", "execution.params.half_spread_ticks=1,2"])
    by = {(r.params["execution.params.fail"], r.params["execution.params.half_spread_ticks"]): r for r in res.records}
    assert [by[(True, h)].status for h in (1, 2)] == ["failed", "failed"]
    assert [by[(False, h)].status for h in (1, 2)] == ["ok", "ok"]
    failed = by[(True, 1)]
    assert "flaky-spread was told to fail" in failed.error and failed.run_dir is None
    assert "Traceback" in (out / "trials" / f"{failed.name}.error.txt").read_text()
    doc = _listing(out)
    assert {t["status"] for t in doc["trials"]} == {"ok", "failed"}
    assert res.best.params["execution.params.fail"] is False
    assert "failed: RuntimeError: flaky-spread was told to fail" in (out / "sweep.md").read_text()


def test_a_killed_worker_has_its_trial_retried(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    marker = tmp_path / "died-once"
    res = sweep(flaky_strategy, out, [f"execution.params.die_once={marker},null", "execution.params.half_spread_ticks=1,2"], retries=1)
    died = [r for r in res.records if r.params["execution.params.die_once"] == str(marker)]
    assert marker.exists()
    assert [r.status for r in res.records] == ["ok"] * 4
    # exactly one trial lost its worker on the first attempt and succeeded on the second
    assert sorted(r.attempts for r in died) == [1, 2]
    assert any("died (signal 9)" in n and "retrying" in n for n in res.notices)


def test_a_trial_whose_worker_always_dies_fails_after_the_retries(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    res = sweep(flaky_strategy, out, ["execution.params.die_always=false,true"], retries=1, workers=1)
    ok, lost = res.records
    assert ok.status == "ok"
    assert lost.status == "failed" and lost.attempts == 2 and "worker died" in lost.error


def test_random_and_tpe_search(sweep, flaky_strategy, tmp_path):
    params = ["execution.params.half_spread_ticks=uniform(0.5,3)", "execution.params.skew_ticks_per_unit=0,0.3"]
    r = sweep(flaky_strategy, tmp_path / "random", params, search="random", trials=3, seed=5)
    assert len(r.records) == 3 and all(x.status == "ok" for x in r.records)
    t = sweep(flaky_strategy, tmp_path / "tpe", params, search="tpe", trials=4, seed=5)
    assert len(t.records) <= 4 and all(x.status == "ok" for x in t.records)
    assert all(0.5 <= x.params["execution.params.half_spread_ticks"] <= 3 for x in t.records)
    # resumed with a larger budget: the 4 done are told to Optuna and reused, 2 more are asked (a tpe
    # repeat of a known point counts against the budget without running again)
    t2 = sweep(flaky_strategy, tmp_path / "tpe", params, search="tpe", trials=6, seed=5)
    assert sum(x.reused for x in t2.records) == len(t.records)
    assert len(t.records) < len(t2.records) <= 6
    assert {x.key for x in t.records} < {x.key for x in t2.records}


def test_an_unknown_metric_is_a_usage_error_and_the_done_trials_are_kept(sweep, flaky_strategy, tmp_path):
    out = tmp_path / "sw"
    with pytest.raises(CmmBtError, match="did you mean 'pnl_map'"):
        sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,2"], metric="pnl_mapp", workers=1)
    assert any(t["status"] == "ok" for t in _listing(out)["trials"])
    res = sweep(flaky_strategy, out, ["execution.params.half_spread_ticks=1,2"], workers=1)
    assert sum(r.reused for r in res.records) >= 1
