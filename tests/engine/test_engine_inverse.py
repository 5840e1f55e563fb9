"""Inverse (coin-margined) contracts: value, fees, cash and equity in the coin."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import ASK, BID, Script, base_book, cfg, first_step, market, trade

from cmm_bt.components import Quotes
from cmm_bt.data.schema import Instrument, MarketData
from cmm_bt.engine.loop import run_backtest
from cmm_bt.metrics import compute_metrics

#: 100 USD per contract, tick 0.5 USD, PnL in BTC
INV = Instrument("BTCUSD_PERP", tick_size=0.5, multiplier=100.0, lot_size=1.0, currency="BTC", contract="inverse")


def test_value_of_linear_and_inverse_contracts():
    lin = Instrument("X", tick_size=0.5, multiplier=10.0)
    assert lin.value(2.0, 101) == pytest.approx(2 * 101 * 0.5 * 10)
    assert lin.tick_value == lin.tick_value_at(1e9) == 5.0
    # 2 contracts of 100 USD at 50.5 USD are worth 2 * 100 / 50.5 coins; a long is short the coin
    assert INV.value(2.0, 101) == pytest.approx(-2 * 100 / 50.5)
    assert INV.value(np.array([1.0, -1.0]), np.array([100, 200])).tolist() == pytest.approx([-2.0, 1.0])
    assert INV.tick_value_at(100) == pytest.approx(abs(INV.value(1, 101) - INV.value(1, 100)), rel=0.01)
    with pytest.raises(ValueError, match="inverse contract"):
        INV.tick_value
    with pytest.raises(ValueError, match="contract must be one of"):
        Instrument("X", 1.0, contract="quanto")
    assert "PnL and fees in BTC" in INV.describe()


def _run(rows, fn, **kw):
    m = market(rows)
    m = MarketData(m.events, INV, m.sessions)
    return run_backtest(m, Script(fn), cfg(flatten_at_episode_end=False, **kw))


def test_buy_then_mark_gains_contract_size_times_inverse_price_change():
    # buy 2 contracts at 101 ticks (50.5 USD) on a trade-through, then the book moves up to 110 / 112
    rows = base_book() + [trade(50, ASK, 100, 5.0)]
    rows += [(300, 0, BID, 110, 5.0, None), (300, 0, ASK, 112, 5.0, None)]
    out = _run(rows, first_step(Quotes(bid_price=101, bid_qty=2.0)), maker_fee=0.0002)
    assert out.fills.price.tolist() == [101] and out.fills.qty.tolist() == [2.0]
    coins = 2 * 100 / 50.5
    assert out.fills.fee[0] == pytest.approx(0.0002 * coins)  # fee on the coin value
    assert out.steps.cash.iloc[-1] == pytest.approx(coins - 0.0002 * coins)
    mark = 0.5 * (110 + 112) * 0.5
    assert out.steps.equity.iloc[-1] == pytest.approx(2 * 100 * (1 / 50.5 - 1 / mark) - 0.0002 * coins)
    m = compute_metrics(out, wall_s=1.0)
    assert m["turnover"] == pytest.approx(coins)
    # the buy at 50.5 against a mid of 50.5 USD (100 / 102 ticks): no edge; the rest is the inventory move
    assert m["pnl_spread_capture"] == pytest.approx(0.0, abs=1e-12)
    assert m["pnl_inventory"] == pytest.approx(2 * 100 * (1 / 50.5 - 1 / mark))


def test_round_trip_pnl_in_the_coin():
    # buy 1 at 101, sell 1 at 103 (ticks): PnL = 100 * (1/50.5 - 1/51.5) BTC
    rows = base_book(bid=100, ask=104) + [trade(50, ASK, 100, 1.0), trade(250, BID, 104, 1.0)]

    def fn(s):
        return Quotes(bid_price=101, bid_qty=1.0) if s.step < 2 else Quotes(ask_price=103, ask_qty=1.0)

    out = _run(rows, fn)
    assert out.fills.side.tolist() == [1, -1]
    expected = 100 * (1 / 50.5 - 1 / 51.5)
    assert out.steps.cash.iloc[-1] == pytest.approx(expected)
    assert out.episodes.pnl[0] == pytest.approx(expected)
    m = compute_metrics(out, wall_s=1.0)
    assert m["total_pnl"] == pytest.approx(expected)
    # both fills passive against the same mid (51 USD): all of it is spread capture, in BTC
    assert m["pnl_spread_capture"] == pytest.approx(100 * (1 / 50.5 - 1 / 51) + 100 * (1 / 51 - 1 / 51.5))
    assert m["pnl_spread_capture"] == pytest.approx(expected) and m["pnl_inventory"] == pytest.approx(0.0, abs=1e-12)
