from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, TRADE, Instrument, MarketData, make_events
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution.estimation import (
    NO_PRICE,
    EstimationParams,
    arrival_depths,
    fit_arrival_intensity,
    fit_intensity_from_depths,
    mid_volatility,
    top_of_book_per_event,
)


def _md(rows, sessions=()):
    ts, ev, side, price, qty = map(np.array, zip(*rows))
    return MarketData(
        make_events(exch_ts=ts.astype(np.int64), ev=ev, side=side, price=price, qty=qty),
        Instrument("X", 1.0),
        list(sessions),
    )


def test_top_of_book_replay_handles_deletes_and_clear():
    md = _md(
        [
            (1, BOOK, BID, 10, 1.0),
            (2, BOOK, BID, 12, 1.0),
            (3, BOOK, ASK, 15, 1.0),
            (4, BOOK, ASK, 14, 2.0),
            (5, BOOK, BID, 12, 0.0),  # best bid deleted -> falls back to 10
            (6, TRADE, BID, 14, 1.0),
            (7, BOOK, ASK, 14, 0.0),  # best ask deleted -> 15
            (8, CLEAR, ASK, 0, 0.0),
            (9, BOOK, ASK, 20, 1.0),
        ]
    )
    bb, ba = top_of_book_per_event(md)
    assert bb.tolist() == [10, 12, 12, 12, 10, 10, 10, 10, 10]
    assert ba.tolist() == [NO_PRICE, NO_PRICE, 15, 14, 14, 14, 15, NO_PRICE, 20]


def test_arrival_depth_uses_mid_before_the_trade_and_groups_sweeps():
    md = _md(
        [
            (1, BOOK, BID, 100, 1.0),
            (1, BOOK, ASK, 101, 1.0),
            (5, TRADE, BID, 101, 1.0),  # one buy order sweeping two levels: depth 2.5
            (5, TRADE, BID, 103, 1.0),
            (5, BOOK, ASK, 101, 0.0),  # book update stamped with the trade: not the prevailing mid
            (5, BOOK, ASK, 104, 1.0),
            (6, TRADE, ASK, 100, 1.0),  # sell at the bid, mid now 102 -> depth 2.0
        ]
    )
    assert arrival_depths(md).tolist() == [2.5, 2.0]


@pytest.mark.parametrize("interval_ms", [100, 1000])
def test_volatility_recovers_sigma(market, interval_ms):
    true_sigma = np.sqrt(0.5 / 0.1)  # ±1 tick with prob 0.5 every 100 ms
    est = mid_volatility(market, interval_ms * 1_000_000)
    assert est == pytest.approx(true_sigma, rel=0.06)


def test_volatility_ignores_session_gaps(make_market):
    a = make_market(seconds=200, seed=1)
    b = make_market(seconds=200, seed=2, start_ns=a.end_ns + 3600 * 10**9)
    ev = b.events.copy()
    ev["price"] += 5000  # a huge jump across the gap must not count
    t0 = int(ev["exch_ts"].iloc[0])
    clear = make_events(exch_ts=np.array([t0, t0]), ev=np.array([CLEAR, CLEAR]), side=np.array([BID, ASK]),
                        price=np.zeros(2, np.int64), qty=np.zeros(2))
    md = MarketData(pd.concat([a.events, clear, ev], ignore_index=True), a.instrument, a.sessions + b.sessions)
    assert mid_volatility(md) == pytest.approx(np.sqrt(5.0), rel=0.1)
    one_span = MarketData(md.events, md.instrument, [])  # the gap is then one long flat stretch + a jump
    assert mid_volatility(one_span) > 2 * np.sqrt(5.0)


def test_intensity_recovers_A_and_k(market):
    fit = fit_arrival_intensity(market)
    k, rate = 0.4, 2.0
    assert fit.k == pytest.approx(k, rel=0.1)
    assert fit.A == pytest.approx(rate * np.exp(k / 2), rel=0.1)
    assert fit.depth[0] == 0.5 and np.all(np.diff(fit.rate) < 0)


def test_intensity_fit_from_exact_depths():
    rng = np.random.default_rng(3)
    d = 0.5 + np.floor(rng.exponential(1 / 1.2, 50_000))
    fit = fit_intensity_from_depths(d, seconds=10_000.0)
    assert fit.k == pytest.approx(1.2, rel=0.05)
    assert fit.A == pytest.approx(5.0 * np.exp(0.6), rel=0.05)


def test_too_short_training_split_is_a_config_error(make_market):
    short = make_market(seconds=2.0, order_rate=2.0)
    with pytest.raises(ConfigError, match="training split too short"):
        mid_volatility(short)
    with pytest.raises(ConfigError, match="training split too short"):
        fit_arrival_intensity(short)
    with pytest.raises(ConfigError, match="training split too short"):
        fit_arrival_intensity(short.between(0, 0))


def test_depths_reached_too_rarely_are_a_config_error():
    with pytest.raises(ConfigError, match="depth"):
        fit_intensity_from_depths(np.full(100, 0.5), seconds=100.0, min_count=5)
    with pytest.raises(ConfigError, match="depth"):  # every order beyond max_depth_ticks
        fit_intensity_from_depths(np.full(100, 80.5), seconds=100.0, max_depth_ticks=50)


def test_estimation_params_reject_unknown_keys():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        EstimationParams(bogus=1)
