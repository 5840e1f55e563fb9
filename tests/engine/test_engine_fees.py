"""Fee models (issue 13): proportional (the default, 2 bp / 5 bp when a strategy sets none, said so) and
per-contract (fixed money per contract, as futures exchanges charge); EngineConfig refuses values the
replay cannot honour."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from engine_helpers import ASK, Script, base_book, book, cfg, market, once, trade
from pydantic import ValidationError

from cmm_bt.components import Quotes
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.synthetic import synthetic_market


def test_per_contract_fees_maker_and_flatten():
    rows = base_book() + [trade(50, ASK, 100, 1.0), book(500, 1, 99, 4.0), book(500, 1, 100, 0.0)]
    c = cfg(maker_fee=0.0, taker_fee=0.0)  # the helper's proportional zeros ...
    c = EngineConfig(**{**c.model_dump(), "fee_model": "per-contract", "maker_fee_per_contract": 0.4,
                        "taker_fee_per_contract": 2.5, "maker_fee": 0.0, "taker_fee": 0.0})  # ... 0 is allowed
    out = run_backtest(market(rows), Script(once(Quotes(bid_price=101, bid_qty=3.0))), c)
    f = out.fills
    assert f.maker.tolist() == [True, False] and f.qty.tolist() == [3.0, 3.0]
    assert f.fee.tolist() == [pytest.approx(0.4 * 3), pytest.approx(2.5 * 3)]  # per contract, not per notional
    ep = out.episodes.iloc[0]
    assert ep.fees == pytest.approx(0.4 * 3 + 2.5 * 3)
    assert ep.pnl == pytest.approx((99 - 101) * 3 * 5.0 - ep.fees)


def test_per_contract_rebate_is_negative():
    rows = base_book() + [trade(50, ASK, 100, 1.0)]
    c = cfg(fee_model="per-contract", maker_fee_per_contract=-0.2, flatten_at_episode_end=False,
            maker_fee=0.0, taker_fee=0.0)
    out = run_backtest(market(rows), Script(once(Quotes(bid_price=101, bid_qty=2.0))), c)
    assert out.fills.fee.tolist() == [pytest.approx(-0.4)]
    assert out.steps.cash.iloc[-1] == pytest.approx(-2 * 101 * 5.0 + 0.4)


def test_per_contract_compiled_equals_python():
    from test_engine_compiled import PythonOnly, Skewed  # the compiled policy and its Python twin

    m = synthetic_market(8_000, seed=3)
    c = EngineConfig(fee_model="per-contract", maker_fee_per_contract=0.3, taker_fee_per_contract=1.1,
                     post_only=False, position_limit=6, decision_interval_ms=5, episode_mode="fixed",
                     episode_length_s=1.0)
    times, _ = decision_grid(m, c)
    sig = pd.DataFrame({"k": np.arange(times.size, dtype=float)})
    fast = run_backtest(m, Skewed(Skewed.Config()), c, signals=sig)
    slow = run_backtest(m, PythonOnly(Skewed.Config()), c, signals=sig)
    assert len(fast.fills) > 20 and (~fast.fills.maker).any() and fast.fills.maker.any()
    np.testing.assert_allclose(fast.fills.fee, np.where(fast.fills.maker, 0.3, 1.1) * fast.fills.qty)
    pd.testing.assert_frame_equal(fast.fills, slow.fills, check_exact=True)
    pd.testing.assert_frame_equal(fast.episodes, slow.episodes, check_exact=True)


def test_fee_model_keys_must_match_the_model():
    with pytest.raises(ValidationError, match="maker_fee does not apply with fee_model 'per-contract'"):
        EngineConfig(fee_model="per-contract", maker_fee=0.0002)
    with pytest.raises(ValidationError, match="taker_fee_per_contract does not apply with fee_model 'proportional'"):
        EngineConfig(taker_fee_per_contract=1.0)
    pc = EngineConfig(fee_model="per-contract", taker_fee_per_contract=1.0)
    assert pc.maker_fee == 0.0 and pc.taker_fee == 0.0  # no silent proportional default on top
    assert EngineConfig(**pc.model_dump()) == pc  # config.yaml's engine section validates again


def test_fee_summary_says_when_defaults_apply():
    assert EngineConfig().fee_summary("USD") == (
        "proportional: maker 2 bp, taker 5 bp of notional (engine defaults: the strategy sets no fees)")
    assert EngineConfig(maker_fee=-0.00002).fee_summary() == (
        "proportional: maker -0.2 bp, taker 5 bp of notional (taker_fee: engine default)")
    assert EngineConfig(maker_fee=0, taker_fee=0).fee_summary() == "proportional: maker 0 bp, taker 0 bp of notional"
    assert EngineConfig(fee_model="per-contract", maker_fee_per_contract=0.85, taker_fee_per_contract=1.2).fee_summary(
        "USD") == "per-contract: maker 0.85 USD, taker 1.2 USD per contract"


@pytest.mark.parametrize(
    "kw",
    [
        {"entry_latency_us": math.inf}, {"response_latency_us": 1e30}, {"feed_latency_us": math.nan},
        {"decision_interval_ms": math.inf}, {"decision_interval_ms": 1e30}, {"decision_interval_ms": 1e-7},
        {"episode_length_s": 1e30}, {"episode_length_s": 1e-12}, {"maker_fee": math.nan}, {"taker_fee": -math.inf},
        {"maker_fee": 2.0}, {"position_limit": math.inf}, {"order_qty": math.nan}, {"queue_exponent": math.inf},
        {"fee_model": "per-contract", "taker_fee_per_contract": math.nan},
        {"episode_mode": "fixed", "episode_length_s": 0.05, "decision_interval_ms": 100},
    ],
)
def test_values_the_replay_cannot_honour_are_refused(kw):
    with pytest.raises(ValidationError):
        EngineConfig(**kw)


@pytest.mark.parametrize("kw", [{"decision_interval_ms": 1e-6}, {"entry_latency_us": 86_400e6},
                                {"episode_mode": "fixed", "episode_length_s": 1e-6, "decision_interval_ms": 1e-3},
                                {"maker_fee": -1.0}])
def test_extremes_that_can_be_honoured_are_accepted(kw):
    c = EngineConfig(**kw)
    assert c.decision_interval_ns >= 1
