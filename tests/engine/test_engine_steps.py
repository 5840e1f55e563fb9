"""Steps written to a file as the replay goes (cmm_bt.engine.steps) are the steps held in memory, and the
metrics read from the file, a chunk of whole episodes at a time, are the in-memory ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.engine import steps as steps_mod
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import run_backtest
from cmm_bt.engine.output import STEP_COLUMNS
from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt.metrics import compute_metrics, equity_curve
from cmm_bt_plugins.execution.fixed_spread import FixedSpread


class Lean(ExecutionPolicy):
    """Joins the touch, one side skipped every fifth step, leaning against the position (Python path)."""

    name = "lean-steps-test"

    def quote(self, s: DecisionState) -> Quotes:
        lean = int(round(s.position))
        bid = None if s.step % 5 == 0 else s.best_bid - lean
        return Quotes(bid, 1.0, s.best_ask - lean, 1.0)


class Fails(Lean):
    name = "fails-steps-test"

    def quote(self, s: DecisionState) -> Quotes:
        if s.step == 250:
            raise RuntimeError("policy failed")
        return super().quote(s)


@pytest.fixture(scope="module")
def market():
    return synthetic_market(40_000, seed=11, mean_gap_us=800.0)


def _config(**kw) -> EngineConfig:
    return EngineConfig(decision_interval_ms=100, episode_mode="fixed", episode_length_s=3.0, maker_fee=0.0001, **kw)


def _fixed_spread() -> FixedSpread:
    return FixedSpread(FixedSpread.Config(half_spread_ticks=1.0, skew_ticks_per_unit=0.5, order_qty=1.0, position_limit=3))


@pytest.mark.parametrize("policy", [Lean(Lean.Config()), _fixed_spread()], ids=["python", "compiled"])
def test_steps_written_to_a_file_are_the_steps_held_in_memory(market, policy, tmp_path, monkeypatch):
    monkeypatch.setattr(steps_mod, "ROW_GROUP_STEPS", 100)  # several row groups
    config = _config()
    held = run_backtest(market, policy, config)
    written = run_backtest(market, policy, config, steps_to=tmp_path / "steps.parquet")
    assert written.steps_file is not None and held.steps_file is None
    assert written.n_steps == held.n_steps > 300
    assert len(held.episodes) > 5
    # row groups of whole episodes, each of at least ROW_GROUP_STEPS steps but the last
    f = pq.ParquetFile(tmp_path / "steps.parquet")
    sizes = [f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)]
    assert len(sizes) > 2 and min(sizes[:-1]) >= 100
    chunks = list(written.step_chunks(["episode"]))
    for a, b in zip(chunks, chunks[1:]):
        assert a["episode"].iloc[-1] < b["episode"].iloc[0]
    drop = ["decision_latency_ns"]
    pd.testing.assert_frame_equal(written.steps.drop(columns=drop), held.steps.drop(columns=drop), check_exact=True)
    assert {c: str(t) for c, t in written.steps.dtypes.items()} == STEP_COLUMNS
    pd.testing.assert_frame_equal(written.fills, held.fills, check_exact=True)
    pd.testing.assert_frame_equal(written.episodes, held.episodes, check_exact=True)
    assert written.counters == held.counters


def test_metrics_from_a_steps_file_equal_those_in_memory(market, tmp_path, monkeypatch):
    monkeypatch.setattr(steps_mod, "ROW_GROUP_STEPS", 64)
    config = _config()
    held = run_backtest(market, Lean(Lean.Config()), config)
    written = run_backtest(market, Lean(Lean.Config()), config, steps_to=tmp_path / "steps.parquet")
    a, b = compute_metrics(held, wall_s=1.0), compute_metrics(written, wall_s=1.0)
    assert a.keys() == b.keys()
    timed = {"decision_latency_us_p50", "decision_latency_us_p99"}
    for key in a.keys() - timed:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12), key
    assert a["fills"] > 20 and a["max_drawdown"] > 0 and not math.isnan(a["markout_1s"])
    assert 0.7 < a["quote_time_bid"] < 0.9  # one step in five without a bid
    np.testing.assert_allclose(equity_curve(written), equity_curve(held), rtol=0, atol=1e-9)
    assert written.steps_file is not None  # the metrics did not read the table whole


def test_a_failed_replay_leaves_no_steps_file(market, tmp_path, monkeypatch):
    monkeypatch.setattr(steps_mod, "ROW_GROUP_STEPS", 50)  # row groups written before the failure
    path = tmp_path / "steps.parquet"
    with pytest.raises(RuntimeError, match="policy failed"):
        run_backtest(market, Fails(Fails.Config()), _config(), steps_to=path)
    assert list(tmp_path.iterdir()) == []


def test_memory_holds_one_episode_of_step_records(market):
    """The kernel's step records are as long as the longest episode, not the run."""
    from cmm_bt.engine import kernel as K

    seen = {}
    real = K.Exchange.__init__

    def spy(self, *a, **kw):
        seen["steps"] = kw["steps"]
        real(self, *a, **kw)

    K.Exchange.__init__ = spy
    try:
        out = run_backtest(market, _fixed_spread(), _config())
    finally:
        K.Exchange.__init__ = real
    assert seen["steps"] == 30 < out.n_steps  # 3 s episodes at 100 ms
