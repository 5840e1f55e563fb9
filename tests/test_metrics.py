"""Metrics on small hand-built engine outputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import FILL_COLUMNS, STEP_COLUMNS, BacktestOutput
from cmm_bt.metrics import compute_metrics, equity_curve, markout, max_drawdown

S = 1_000_000_000
INST = Instrument("TEST", tick_size=0.5, multiplier=10.0, currency="USD")  # 5 USD per tick


def steps_frame(**cols) -> pd.DataFrame:
    n = len(cols["ts"])
    defaults = {"episode": 0, "best_bid": 99, "best_ask": 101, "mid": 100.0, "position": 0.0, "cash": 0.0,
                "equity": 0.0, "bid_quote": np.nan, "ask_quote": np.nan, "decision_latency_ns": 1000}
    data = {c: np.asarray(cols.get(c, np.full(n, defaults.get(c, 0)))) for c in STEP_COLUMNS}
    return pd.DataFrame({c: data[c].astype(t) for c, t in STEP_COLUMNS.items()})


def fills_frame(rows: list[dict]) -> pd.DataFrame:
    base = {"ts": 0, "local_ts": 0, "order_id": 1, "side": 1, "price": 100, "qty": 1.0, "fee": 0.0,
            "maker": True, "episode": 0, "mid_at_fill": 100.0}
    full = [{**base, **r} for r in rows]
    return pd.DataFrame({c: pd.Series([r[c] for r in full], dtype=t) for c, t in FILL_COLUMNS.items()})


def episodes_frame(pnls: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"episode": np.arange(len(pnls), dtype="int32"), "start_ns": 0, "end_ns": 0,
                         "pnl": np.asarray(pnls, dtype=float), "fees": 0.0, "fills": 0, "volume": 0.0,
                         "mean_abs_position": 0.0, "max_abs_position": 0.0})


def output(steps, fills=None, pnls=(), counters=None) -> BacktestOutput:
    return BacktestOutput(INST, steps, fills if fills is not None else fills_frame([]), episodes_frame(list(pnls)),
                          counters=counters or {})


def two_episodes() -> BacktestOutput:
    steps = steps_frame(ts=np.arange(4) * S, episode=[0, 0, 1, 1], position=[0.0, 1.0, -2.0, 1.0],
                        equity=[2.0, 10.0, -1.0, -4.0], decision_latency_ns=[1000, 2000, 3000, 100_000])
    return output(steps, pnls=[10.0, -4.0], counters={"events": 500, "orders_submitted": 8, "orders_filled": 2,
                                                       "orders_rejected": 1, "orders_cancelled": 3})


def test_episode_pnl_metrics_have_known_values():
    m = compute_metrics(two_episodes(), wall_s=2.0)
    assert m["epnl"] == pytest.approx(3.0)
    assert m["total_pnl"] == pytest.approx(6.0)
    assert m["episodes"] == 2
    assert m["map"] == pytest.approx(1.0)  # mean(|0|, |1|, |-2|, |1|)
    assert m["pnl_map"] == pytest.approx(3.0)
    assert m["sharpe"] == pytest.approx(3.0 / np.std([10.0, -4.0], ddof=1))
    assert m["sortino"] == pytest.approx(3.0 / math.sqrt(16.0 / 2))


def test_counters_and_throughput():
    m = compute_metrics(two_episodes(), wall_s=2.0)
    assert m["events"] == 500 and m["events_per_s"] == pytest.approx(250.0)
    assert m["decisions"] == 4 and m["decisions_per_s"] == pytest.approx(2.0)
    assert m["order_fill_ratio"] == pytest.approx(2 / 8)
    assert (m["orders_submitted"], m["orders_rejected"], m["orders_cancelled"]) == (8, 1, 3)
    assert m["decision_latency_us_p50"] == pytest.approx(2.5)
    assert m["decision_latency_us_p99"] == pytest.approx(np.percentile([1, 2, 3, 100], 99))
    assert m["wall_s"] == 2.0


def test_undefined_ratios_are_missing_not_zero():
    steps = steps_frame(ts=np.arange(3) * S, equity=[0.0, 1.0, 5.0])
    m = compute_metrics(output(steps, pnls=[5.0]), wall_s=0.0)
    assert m["map"] == 0.0 and np.isnan(m["pnl_map"])  # no position: PnL per unit of it is undefined
    assert np.isnan(m["sharpe"]) and np.isnan(m["sortino"])  # one episode
    assert np.isnan(m["order_fill_ratio"])  # nothing submitted
    assert m["events_per_s"] == 0.0  # wall_s 0


def test_sortino_missing_without_losing_episode_but_sharpe_defined():
    steps = steps_frame(ts=np.arange(2) * S, episode=[0, 1])
    m = compute_metrics(output(steps, pnls=[1.0, 3.0]), wall_s=1.0)
    assert np.isnan(m["sortino"])
    assert m["sharpe"] == pytest.approx(2.0 / np.std([1.0, 3.0], ddof=1))


def test_pnl_attribution_of_a_round_trip():
    """Buy 1 passively at 99 (mid 100), the mid rises to 102, flatten by selling at 101 (taker)."""
    steps = steps_frame(ts=np.arange(3) * S, mid=[100.0, 101.0, 102.0], bid_quote=[99.0, np.nan, np.nan],
                        ask_quote=[101.0, 103.0, np.nan])
    fills = fills_frame([{"ts": 0, "side": 1, "price": 99, "mid_at_fill": 100.0, "fee": 0.5},
                         {"ts": 2 * S, "side": -1, "price": 101, "mid_at_fill": 102.0, "maker": False, "order_id": 2}])
    tv = INST.tick_value
    m = compute_metrics(output(steps, fills, pnls=[2 * tv - 0.5]), wall_s=1.0)
    assert m["pnl_spread_capture"] == pytest.approx(1 * tv)  # bought one tick below the mid
    assert m["pnl_taker"] == pytest.approx(-1 * tv)  # sold one tick below the mid
    assert m["pnl_inventory"] == pytest.approx(2 * tv)  # held 1 lot while the mid rose 2 ticks
    assert m["pnl_fees"] == -0.5
    assert m["quote_time_bid"] == pytest.approx(1 / 3) and m["quote_time_ask"] == pytest.approx(2 / 3)
    assert m["fills_per_quoted_hour"] == pytest.approx(2 / (2 * S / 1e9 / 3600))


def test_max_drawdown_of_known_curve():
    assert max_drawdown(np.array([0.0, 5, 2, 8, 1, 3])) == pytest.approx(7.0)
    assert max_drawdown(np.array([0.0, 1, 2, 3])) == 0.0
    assert max_drawdown(np.array([0.0, -2, -1])) == pytest.approx(2.0)  # from the starting capital
    steps = steps_frame(ts=np.arange(5) * S, equity=[5.0, 2, 8, 1, 3])
    assert compute_metrics(output(steps, pnls=[3.0]), wall_s=1)["max_drawdown"] == pytest.approx(7.0)


def test_equity_curve_same_whether_engine_resets_or_carries_cash():
    reset = steps_frame(ts=np.arange(4) * S, episode=[0, 0, 1, 1], equity=[2.0, 10.0, -1.0, -4.0])
    carried = steps_frame(ts=np.arange(4) * S, episode=[0, 0, 1, 1], equity=[2.0, 10.0, 9.0, 6.0])
    a = equity_curve(output(reset, pnls=[10.0, -4.0]))
    b = equity_curve(output(carried, pnls=[10.0, -4.0]))
    np.testing.assert_allclose(a, [0.0, 2.0, 10.0, 9.0, 6.0])
    np.testing.assert_allclose(a, b)
    assert compute_metrics(output(reset, pnls=[10.0, -4.0]), wall_s=1)["max_drawdown"] == pytest.approx(4.0)


def mid_path_output(fills: list[dict]) -> BacktestOutput:
    # mid 100 at 0 s, 101 at 0.5 s, 102 at 1 s, 103 at 5 s, 104.5 at 10 s, flat to 20 s
    ts = np.array([0, S // 2, S, 5 * S, 10 * S, 20 * S])
    steps = steps_frame(ts=ts, mid=[100.0, 101.0, 102.0, 103.0, 104.5, 104.5])
    return output(steps, fills_frame(fills), pnls=[0.0])


def test_markout_buy_into_rising_mid_is_positive():
    out = mid_path_output([{"ts": 0, "side": 1, "price": 100}])
    m = compute_metrics(out, wall_s=1)
    assert m["markout_1s"] == pytest.approx(2.0)
    assert m["markout_10s"] == pytest.approx(4.5)


def test_markout_sell_into_rising_mid_is_negative_and_qty_weighted():
    out = mid_path_output([{"ts": 0, "side": -1, "price": 100, "qty": 3.0},
                           {"ts": 4 * S, "side": 1, "price": 103, "qty": 1.0}])
    # sell: 100 - mid(1 s)=102 -> -2 (qty 3); buy at 4 s: mid(5 s)=103 - 103 -> 0 (qty 1)
    assert markout(out, 1.0) == pytest.approx((-2 * 3 + 0 * 1) / 4)
    # 10 s: sell 100 - 104.5 = -4.5; buy at 4 s: mid(14 s) = 104.5 - 103 = 1.5
    assert markout(out, 10.0) == pytest.approx((-4.5 * 3 + 1.5) / 4)


def test_markout_skips_fills_whose_horizon_leaves_the_episode():
    out = mid_path_output([{"ts": 15 * S, "side": 1, "price": 100}])
    assert markout(out, 1.0) == pytest.approx(4.5)
    assert math.isnan(markout(out, 10.0))  # 25 s is after the episode's last step


def test_markout_with_explicit_exchange_mid():
    out = mid_path_output([{"ts": 0, "side": 1, "price": 100}])
    mid = (np.array([0, S, 2 * S]), np.array([100.0, 99.0, 98.0]))
    assert markout(out, 1.0, mid=mid) == pytest.approx(-1.0)
    assert math.isnan(markout(out, 10.0, mid=mid))


def test_traded_amounts():
    out = mid_path_output([{"ts": 0, "side": 1, "price": 100, "qty": 2.0, "fee": 0.5, "order_id": 1},
                           {"ts": S, "side": -1, "price": 102, "qty": 1.0, "fee": -0.25, "order_id": 2},
                           {"ts": S, "side": -1, "price": 102, "qty": 1.0, "fee": -0.25, "order_id": 2}])
    out.counters = {"orders_submitted": 4}
    m = compute_metrics(out, wall_s=1)
    assert m["fills"] == 3
    assert m["volume"] == pytest.approx(4.0)
    assert m["turnover"] == pytest.approx((2 * 100 + 102 + 102) * 5.0)  # ticks * tick value
    assert m["fees"] == pytest.approx(0.0)
    assert m["order_fill_ratio"] == pytest.approx(2 / 4)  # no orders_filled counter: distinct order ids


def test_empty_output_does_not_crash():
    out = BacktestOutput(INST, steps_frame(ts=np.zeros(0, dtype=np.int64)), fills_frame([]), episodes_frame([]))
    m = compute_metrics(out, wall_s=1.0)
    assert math.isnan(m["epnl"]) and m["episodes"] == 0 and m["fills"] == 0
    assert math.isnan(m["markout_1s"])
    assert m["max_drawdown"] == 0.0 and m["map"] == 0.0


def test_contract_keys_present():
    m = compute_metrics(two_episodes(), wall_s=1.0)
    for key in ("epnl", "map", "pnl_map", "sharpe", "max_drawdown", "fills", "events", "wall_s", "events_per_s",
                "decision_latency_us_p50", "decision_latency_us_p99"):
        assert key in m


def test_median_of_counts_is_numpys_median():
    """The step intervals' median is taken from value counts (the steps are read a chunk at a time)."""
    from cmm_bt.metrics import _median_of_counts

    rng = np.random.default_rng(0)
    for _ in range(500):
        x = rng.integers(0, 6, rng.integers(1, 12)) * 100_000_000
        values, counts = np.unique(x, return_counts=True)
        assert _median_of_counts(dict(zip(values.tolist(), counts.tolist()))) == np.median(x)
