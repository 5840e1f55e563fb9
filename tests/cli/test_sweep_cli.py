"""`cmm-bt sweep`: exit codes and one-line errors, the table, best.yaml and --then-test."""

from __future__ import annotations

import json
import sys

GRID = ["-P", "execution.params.gamma=0.05,0.5", "-P", "execution.params.horizon_s=30,120"]


def test_sweep_then_test_prints_both_splits_and_best_yaml_runs(cli, tmp_path, data_root):
    out = tmp_path / "sw"
    res = cli("sweep", "strategies/avellaneda-stoikov.yaml", "--dataset", "cffex-if", *GRID, "--workers", "2",
              "--out", out, "--then-test", "--data-root", data_root)
    assert res.code == 0, res.err
    assert "Sweep results (by pnl_map, max)" in res.out
    assert "Best trial on validation vs test" in res.out and "test − validation" in res.out
    doc = json.loads((out / "sweep.json").read_text())
    assert len(doc["trials"]) == 4 and all(t["status"] == "ok" for t in doc["trials"])
    assert doc["test"]["key"] == doc["best"]["key"]
    assert not list(out.glob("trials/*/*.png")) and (out / "test" / "equity.png").is_file()  # plots: the test run only
    assert all("reporters=[]" in t["overrides"] for t in doc["trials"])
    test_metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert doc["test"]["metrics"]["pnl_map"] == test_metrics["pnl_map"]
    run = cli("run", out / "best.yaml", "--out", tmp_path / "best", "--data-root", data_root)
    assert run.code == 0, run.err
    # the rerun reuses all four trials and the test run
    again = cli("sweep", "strategies/avellaneda-stoikov.yaml", "--dataset", "cffex-if", *GRID, "--out", out,
                "--then-test", "--data-root", data_root)
    assert again.code == 0, again.err
    assert "4 of 4 trials found complete" in again.out
    assert json.loads((out / "sweep.json").read_text())["test"]["reused"] is True


def test_a_mistyped_key_exits_2_with_one_line_and_a_did_you_mean(cli, tmp_path):
    res = cli("sweep", "strategies/avellaneda-stoikov.yaml", "-P", "execution.params.gama=0.1,1", "--out", tmp_path / "sw")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert "avellaneda-stoikov.yaml" in res.err and "did you mean 'execution.params.gamma'?" in res.err
    assert not (tmp_path / "sw").exists()


def test_usage_errors_exit_2(cli, tmp_path):
    base = ["sweep", "strategies/avellaneda-stoikov.yaml", "--out", tmp_path / "sw"]
    assert "--trials" in cli(*base, "-P", "execution.params.gamma=0.1,1", "--trials", "3").err
    assert cli(*base, "-P", "execution.params.gamma=0.1,1", "--search", "random").code == 2
    assert "continuous range" in cli(*base, "-P", "execution.params.gamma=log(0.01,1)").err
    assert "must be max or min" in cli(*base, "-P", "execution.params.gamma=0.1,1", "--direction", "up").err
    assert "Input should be" in cli(*base, "-P", "execution.params.gamma=0.1,1", "--split", "holdout").err


def test_ray_executor_without_ray_exits_2_saying_how_to_install_it(cli, tmp_path, monkeypatch, data_root):
    monkeypatch.setitem(sys.modules, "ray", None)
    res = cli("sweep", "strategies/fixed-spread.yaml", "-d", "cffex-if", "-P", "execution.params.half_spread_ticks=1,2",
              "--executor", "ray", "--out", tmp_path / "sw", "--data-root", data_root)
    assert res.code == 2
    assert "pip install 'cmm-bt[ray]'" in res.err
