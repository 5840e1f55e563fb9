"""Decision grid, local view, determinism and end-to-end accounting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_helpers import ASK, BID, MS, Script, base_book, book, cfg, market, ms, trade
from pydantic import ValidationError

from cmm_bt.components import Quotes
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt.errors import ConfigError, DataError


def touch(s):
    return Quotes(bid_price=s.best_bid, bid_qty=1.0, ask_price=s.best_ask, ask_qty=1.0)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        EngineConfig(decision_interval=5)
    with pytest.raises(ValidationError, match="queue_model"):
        EngineConfig(queue_model="fifo")


def test_grid_starts_when_local_book_is_two_sided():
    rows = [book(0, BID, 100, 1.0), book(250, ASK, 102, 1.0, local_ms=260)]
    times, eps = decision_grid(market(rows), cfg())
    assert times[0] == ms(300)  # first multiple of 100 ms after the local book has both sides
    assert np.all(np.diff(times) == 100 * MS) and times[-1] == ms(900)
    assert set(eps.tolist()) == {0}


def test_grids_too_large_to_hold_are_refused_before_they_are_built():
    m = market(base_book(), end_ms=1000.0 * 3600)  # one hour: 3.6e12 decisions at 1 ns, 3.6e9 episodes of 1 us
    with pytest.raises(ConfigError, match="engine.decision_interval_ms: 1e-06 ms gives 3,600,000,000,000 decision steps"):
        decision_grid(m, cfg(decision_interval_ms=1e-6))
    with pytest.raises(ConfigError, match="engine.episode_length_s: 1e-06 s cuts this data into more than"):
        decision_grid(m, cfg(decision_interval_ms=1e-3, episode_mode="fixed", episode_length_s=1e-6))


def test_fixed_episodes_and_sessions():
    rows = base_book() + [book(1500, BID, 100, 4.0)]
    m = market(rows, sessions=[(ms(0), ms(1000)), (ms(1200), ms(2000))])
    times, eps = decision_grid(m, cfg(episode_mode="fixed", episode_length_s=0.4))
    # session 1: [0,400) [400,800) [800,1000); session 2: [1200,1600) [1600,2000)
    assert sorted(set(eps.tolist())) == [0, 1, 2, 3, 4]
    assert times[eps == 2].tolist() == [ms(800), ms(900)]
    assert times[eps == 3][0] == ms(1200)
    out = run_backtest(m, Script(touch), cfg(episode_mode="fixed", episode_length_s=0.4))
    assert out.episodes.start_ns.tolist() == [ms(x) for x in (0, 400, 800, 1200, 1600)]


def test_start_end_restrict_the_grid():
    times, _ = decision_grid(market(base_book()), cfg(), start_ns=ms(200), end_ns=ms(500))
    assert times.tolist() == [ms(200), ms(300), ms(400)]


def test_policy_sees_only_arrived_market_data():
    # the bid moves to 101 at exchange time 50 ms but arrives locally at 150 ms
    rows = base_book() + [book(50, BID, 101, 3.0, local_ms=150)]
    pol = Script(lambda s: Quotes())
    run_backtest(market(rows), pol, cfg())
    assert [s.best_bid for s in pol.states[:3]] == [100, 100, 101]
    assert pol.states[2].bid_qty == 3.0


def test_feed_latency_applies_when_local_equals_exchange_time():
    rows = base_book() + [book(95, BID, 101, 3.0)]
    pol = Script(lambda s: Quotes())
    run_backtest(market(rows), pol, cfg(feed_latency_us=10_000))
    # the book arrives at 10 ms -> first step at 100 ms; the 95 ms update arrives at 105 ms
    assert pol.states[0].ts == ms(100)
    assert [s.best_bid for s in pol.states[:2]] == [100, 101]
    instant = Script(lambda s: Quotes())
    run_backtest(market(rows), instant, cfg(feed_latency_us=0))
    assert instant.states[1].ts == ms(100) and instant.states[1].best_bid == 101


def test_policy_learns_fill_after_response_latency():
    rows = base_book() + [trade(99.5, ASK, 100, 1.0)]  # fill at 99.5 ms, report arrives at 100.5 ms
    pol = Script(lambda s: Quotes(bid_price=101, bid_qty=1.0) if s.step == 0 else Quotes())
    out = run_backtest(market(rows), pol, cfg(response_latency_us=1000, flatten_at_episode_end=False))
    assert out.steps.position.tolist()[1] == 1.0  # exchange-side inventory
    assert [s.position for s in pol.states[:3]] == [0.0, 0.0, 1.0]


def test_signals_are_passed_per_step_and_checked():
    m = market(base_book())
    times, _ = decision_grid(m, cfg())
    sig = pd.DataFrame({"pred_mid": np.arange(len(times), dtype=float)}, index=times)
    pol = Script(lambda s: Quotes())
    run_backtest(m, pol, cfg(), signals=sig)
    assert [s.signals["pred_mid"] for s in pol.states] == list(range(len(times)))
    with pytest.raises(DataError, match="signals"):
        run_backtest(m, pol, cfg(), signals=sig.iloc[:-1])


def test_hooks_are_called():
    rows = base_book() + [trade(50, ASK, 100, 1.0)]
    seen_q, seen_f = [], []
    out = run_backtest(market(rows), Script(lambda s: Quotes(bid_price=101, bid_qty=1.0)), cfg(),
                       on_quote=lambda s, q: seen_q.append(q), on_fill=seen_f.append)
    assert len(seen_q) == len(out.steps)
    assert [f["order_id"] for f in seen_f] == out.fills.order_id.tolist()
    assert set(seen_f[0]) == set(out.fills.columns)


@pytest.fixture(scope="module")
def syn():
    return synthetic_market(5000, seed=3)


def test_deterministic(syn):
    c = EngineConfig(queue_model="power-prob", partial_fills=True)
    a = run_backtest(syn, Script(touch), c)
    b = run_backtest(syn, Script(touch), c)
    pd.testing.assert_frame_equal(a.fills, b.fills)
    pd.testing.assert_frame_equal(a.steps.drop(columns="decision_latency_ns"), b.steps.drop(columns="decision_latency_ns"))
    assert a.counters == b.counters
    assert a.fills.order_id.min() == 1


@pytest.mark.parametrize("model", ["conservative", "power-prob", "log-prob"])
def test_touch_policy_accounting_is_consistent(syn, model):
    c = EngineConfig(queue_model=model, maker_fee=-0.0001, taker_fee=0.0005, position_limit=5)
    out = run_backtest(syn, Script(touch), c)
    f, st = out.fills, out.steps
    assert len(f) > 20 and out.counters["events"] == len(syn.events)
    tv = syn.instrument.tick_value
    flow = -(f.side * f.qty * f.price * tv) - f.fee
    # at every step: cash == fill cash flows so far, position == signed fill qty so far
    idx = np.searchsorted(f.ts.to_numpy(), st.ts.to_numpy(), side="right")
    cum_cash = np.concatenate([[0.0], np.cumsum(flow.to_numpy())])[idx]
    cum_pos = np.concatenate([[0.0], np.cumsum((f.side * f.qty).to_numpy())])[idx]
    assert np.allclose(st.cash, cum_cash) and np.allclose(st.position, cum_pos)
    assert np.allclose(st.equity, st.cash + st.position * st.mid * tv)
    assert st.position.abs().max() <= 5
    # flattened at the end: total PnL = all cash flows = sum of episode PnL
    assert (f.side * f.qty).sum() == pytest.approx(0.0)
    assert out.episodes.pnl.sum() == pytest.approx(flow.sum())
    assert out.episodes.fees.sum() == pytest.approx(f.fee.sum())
    assert f.order_id.is_monotonic_increasing or f.order_id.nunique() <= out.counters["orders_submitted"]
    assert out.counters["orders_filled"] <= out.counters["orders_submitted"]


def test_numpy_and_float_quotes_are_converted_like_int_and_float():
    """The Python loop hands the policy's values to the kernel's compiled entry point as they are: numpy
    scalars work, a fractional price is truncated to its tick as ``int()`` does, a bad one is an error."""
    m = synthetic_market(20_000, seed=3)
    c = cfg(decision_interval_ms=200.0)

    def plain(s):
        return Quotes(s.best_bid, 1.0, s.best_ask, 2.0)

    def numpy_typed(s):
        return Quotes(np.int64(s.best_bid), np.float64(1.0), np.int32(s.best_ask), 2)

    def fractional(s):
        return Quotes(s.best_bid + 0.9, 1.0, s.best_ask + 0.2, 2.0)

    ref = run_backtest(m, Script(plain), c)
    assert ref.fills.shape[0] > 0
    for policy in (numpy_typed, fractional):
        out = run_backtest(m, Script(policy), c)
        pd.testing.assert_frame_equal(out.fills, ref.fills)
        pd.testing.assert_frame_equal(out.steps.drop(columns="decision_latency_ns"),
                                      ref.steps.drop(columns="decision_latency_ns"))
    with pytest.raises(ValueError, match="invalid literal for int"):
        run_backtest(m, Script(lambda s: Quotes("x", 1.0, None, 0.0)), c)
