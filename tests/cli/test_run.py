"""`cmm-bt run` end to end on the embedded synthetic dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

REQUIRED_KEYS = {
    "epnl", "map", "pnl_map", "sharpe", "max_drawdown", "fills", "events", "wall_s", "events_per_s",
    "decision_latency_us_p50", "decision_latency_us_p99", "order_fill_ratio", "markout_1s", "markout_10s",
    "turnover", "fees",
}
TIMINGS = {"wall_s", "run_wall_s", "events_per_s", "decisions_per_s", "decision_latency_us_p50", "decision_latency_us_p99"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from cmm_bt.cli import main

    root = tmp_path_factory.mktemp("runs")
    for name in ("a", "b"):
        with pytest.raises(SystemExit) as exc:
            main(["run", "strategies/avellaneda-stoikov.yaml", "--out", str(root / name)])
        assert exc.value.code == 0
    return root / "a", root / "b"


def test_run_folder_has_config_metrics_and_series(two_runs):
    run = two_runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert REQUIRED_KEYS <= set(metrics)
    assert metrics["fills"] > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["execution"]["name"] == "avellaneda-stoikov"
    assert config["dataset"] == "synthetic"
    for table in ("steps", "fills", "episodes"):
        assert len(pd.read_parquet(run / f"{table}.parquet")) > 0
    assert (run / "equity.png").stat().st_size > 0


def test_same_config_and_seed_give_identical_results(two_runs):
    a, b = (json.loads((r / "metrics.json").read_text()) for r in two_runs)
    assert {k: v for k, v in a.items() if k not in TIMINGS} == {k: v for k, v in b.items() if k not in TIMINGS}
    fills_a, fills_b = (pd.read_parquet(r / "fills.parquet") for r in two_runs)
    pd.testing.assert_frame_equal(fills_a, fills_b)


def test_existing_out_folder_is_refused(cli, two_runs):
    result = cli("run", "strategies/avellaneda-stoikov.yaml", "--out", two_runs[0])
    assert result.code == 2
    assert "exists" in result.err


def test_run_folder_steps_were_written_during_the_replay_and_equal_a_replay_in_memory(two_runs):
    """The CLI writes the steps as the replay goes (``steps_to``); they are the steps of the same run
    held in memory, and nothing temporary is left beside the folder."""
    from pathlib import Path

    from cmm_bt.api import Session, execute_run, prepare_run

    session = Session.start()
    run, market = prepare_run(session, Path("strategies/avellaneda-stoikov.yaml"))
    held = execute_run(session, run, market, write=False)
    assert held.output.steps_file is None
    written = pd.read_parquet(two_runs[0] / "steps.parquet")
    drop = ["decision_latency_ns"]
    pd.testing.assert_frame_equal(written.drop(columns=drop), held.output.steps.drop(columns=drop), check_exact=True)
    assert sorted(p.name for p in two_runs[0].parent.iterdir()) == ["a", "b"]


def test_a_failed_run_leaves_no_steps_file(cli, tmp_path, monkeypatch):
    """A replay that fails midway removes the steps it was writing; no run folder appears."""
    from cmm_bt_plugins.execution import fixed_spread

    def broken(self, state):
        if state.step == 50:
            raise RuntimeError("policy broke")
        return real(self, state)

    real = fixed_spread.FixedSpread.quote
    monkeypatch.setattr(fixed_spread.FixedSpread, "compiled", lambda self: None)  # the Python path
    monkeypatch.setattr(fixed_spread.FixedSpread, "quote", broken)
    result = cli("run", "strategies/fixed-spread.yaml", "--out", tmp_path / "runs" / "x")
    assert result.code != 0
    assert list((tmp_path / "runs").iterdir()) == []
