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
