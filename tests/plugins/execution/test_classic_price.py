from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from cmm_bt.components import DecisionState, RunContext
from cmm_bt.data.schema import Instrument
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution.classic_price import ClassicPrice


def _policy(order_qty=1.0, limit=5.0, lot=1.0, **params):
    p = ClassicPrice(ClassicPrice.Config(**params))
    p.fit(RunContext(Instrument("T", 0.1, lot_size=lot), 100_000_000, limit, order_qty))
    return p


def _state(bid=1000, ask=1002, pos=0.0, **signals):
    sig = {"pred_mid": 0.0, "pred_spread": 2.0, "pred_volume": 0.0, **signals}
    return DecisionState(ts=0, step=0, best_bid=bid, best_ask=ask, bid_qty=1, ask_qty=1, position=pos, episode_progress=0.0, signals=sig)


def test_centre_width_and_outward_rounding():
    p = _policy()
    q = p.quote(_state(pred_mid=0.0, pred_spread=3.0))  # mid 1001, half 1.5
    assert (q.bid_price, q.ask_price) == (999, 1003)
    q = p.quote(_state(pred_mid=0.8, pred_spread=2.0))  # centre 1001.8 -> 1000.8 / 1002.8
    assert (q.bid_price, q.ask_price) == (1000, 1003)
    q = _policy(alpha=0.5).quote(_state(pred_mid=2.0, pred_spread=4.0))  # centre 1002, half 2
    assert (q.bid_price, q.ask_price) == (1000, 1004)
    q = _policy(spread_scale=2.0, min_spread_ticks=1.0).quote(_state(pred_spread=0.2))  # width floor 1
    assert (q.bid_price, q.ask_price) == (1000, 1002)


def test_post_only_never_crosses_the_touch():
    q = _policy().quote(_state(pred_mid=10.0, pred_spread=1.0))  # centre far above the ask
    assert q.bid_price == 1001 and q.ask_price == 1012  # bid clamped to best_ask - 1
    q = _policy().quote(_state(pred_mid=-10.0, pred_spread=1.0))
    assert q.ask_price == 1001 and q.bid_price == 990
    q = _policy(allow_inside_spread=False).quote(_state(pred_mid=10.0, pred_spread=1.0))
    assert q.bid_price == 1000


def test_inventory_skew_and_position_limit():
    p = _policy(skew_ticks_per_unit=0.5, limit=3.0)
    q = p.quote(_state(pos=2.0, pred_spread=2.0))  # centre 1001 - 1 = 1000
    assert (q.bid_price, q.ask_price) == (999, 1001)
    q = p.quote(_state(pos=3.0))  # buying would breach the limit
    assert q.bid_price is None and q.bid_qty == 0 and q.ask_price is not None
    q = p.quote(_state(pos=-3.0))
    assert q.ask_price is None and q.bid_price is not None


def test_size_from_predicted_volume():
    p = _policy(order_qty=1.0, size_fraction=0.1, max_qty=4.0)
    assert p.quote(_state(pred_volume=math.log1p(20))).bid_qty == 2.0  # 0.1 * 20
    assert p.quote(_state(pred_volume=math.log1p(29))).bid_qty == 2.0  # 2.9 -> lot 1 -> 2
    assert p.quote(_state(pred_volume=math.log1p(1000))).bid_qty == 4.0  # capped
    assert p.quote(_state(pred_volume=0.0)).bid_qty == 1.0  # floor = min_qty = order_qty
    assert _policy(order_qty=1.0).size_range()[:2] == (1.0, 5.0)
    assert _policy(lot=0.5, order_qty=0.5, size_fraction=0.1).quote(_state(pred_volume=math.log1p(17))).ask_qty == 1.5


def test_nan_signals_fall_back():
    q = _policy().quote(_state(bid=1000, ask=1004, pred_mid=float("nan"), pred_spread=float("nan"), pred_volume=float("nan")))
    assert (q.bid_price, q.ask_price, q.bid_qty) == (1000, 1004, 1.0)  # current spread, mid, min size


def test_missing_signals_are_a_config_error():
    p = _policy()
    st = DecisionState(ts=0, step=0, best_bid=1, best_ask=3, bid_qty=1, ask_qty=1, position=0, episode_progress=0)
    with pytest.raises(ConfigError, match="pred_mid"):
        p.quote(st)


def test_config_validation():
    with pytest.raises(ValidationError):
        ClassicPrice.Config(min_qty=3, max_qty=1)
    with pytest.raises(ValidationError):
        ClassicPrice.Config(bogus=1)
