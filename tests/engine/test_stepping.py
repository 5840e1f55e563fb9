"""Replay / Stepper (driving the engine step by step from outside) give exactly run_backtest's episodes."""

from __future__ import annotations

import numpy as np
import pytest

from cmm_bt.components import NO_PRICE, DecisionState, ExecutionPolicy, Quotes
from cmm_bt.engine import kernel as K
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.stepping import Replay
from cmm_bt.engine.synthetic import synthetic_market


class Skew(ExecutionPolicy):
    """Joins / improves / crosses by turns, leans against the position, one side off now and then."""

    name = "skew-test"

    def quote(self, s: DecisionState) -> Quotes:
        shift = s.step % 3 - 1
        lean = int(round(s.position))
        bid = None if s.step % 7 == 3 else s.best_bid + shift - lean
        return Quotes(bid, 1.0 + (s.step % 2), s.best_ask - shift - lean, 1.0)


def _as_raw(q: Quotes) -> tuple[int, float, int, float]:
    return (NO_PRICE if q.bid_price is None else int(q.bid_price), float(q.bid_qty),
            NO_PRICE if q.ask_price is None else int(q.ask_price), float(q.ask_qty))


def _drive(stepper, policy, k0, k1, s, e, flatten):
    """The stepper through steps k0..k1-1 with ``policy``; returns (records, fills, pnl)."""
    view = stepper.begin(k0, k1, e)
    for k in range(k0, k1):
        t = stepper.time
        q = _as_raw(policy.quote(DecisionState(t, k, *view, (t - s) / float(e - s))))
        if k + 1 < k1:
            view = stepper.step(*q)
        else:
            pnl = stepper.finish(*q, flatten)
    f_i, f_f = stepper.fills()
    return stepper.ex.rec[: k1 - k0].copy(), (f_i.copy(), f_f.copy()), pnl


@pytest.mark.parametrize("post_only,flatten,every", [(True, True, 64), (False, False, 1000), (True, True, 1)])
def test_stepper_episodes_are_run_backtests_episodes(post_only, flatten, every):
    market = synthetic_market(40_000, seed=3)
    cfg = EngineConfig(decision_interval_ms=50, episode_mode="fixed", episode_length_s=9, post_only=post_only,
                       flatten_at_episode_end=flatten, queue_model="power-prob", position_limit=3.0,
                       maker_fee=-0.0001, taker_fee=0.0003)
    out = run_backtest(market, Skew(Skew.Config()), cfg)
    times, ids = decision_grid(market, cfg)
    replay = Replay(market, cfg, snapshot_every=every)
    assert np.array_equal(replay.times, times) and np.array_equal(replay.episode_ids, ids)
    stepper = replay.stepper()
    rec = out.steps
    # drive the episodes in a shuffled order: each begin() is a fresh agent on the restored market
    order = np.random.default_rng(0).permutation(len(replay.episodes))
    assert len(order) >= 4
    for ep in order:
        s, e, k0, k1 = replay.episodes[ep]
        recs, (f_i, f_f), pnl = _drive(stepper, Skew(Skew.Config()), k0, k1, s, e, flatten)
        row = out.episodes.iloc[ep]
        if flatten:  # episodes are independent: equal PnL, fills and step records
            assert pnl == pytest.approx(row.pnl, rel=1e-12, abs=1e-12)
            fills = out.fills[out.fills.episode == ep]
            assert len(fills) == f_i.shape[0] == row.fills
            assert np.array_equal(fills.ts.to_numpy(), f_i[:, K.FI_TS])
            assert np.array_equal(fills.price.to_numpy(), f_i[:, K.FI_PX])
            assert np.array_equal(fills.side.to_numpy(), f_i[:, K.FI_SIDE])
            assert np.array_equal(fills.qty.to_numpy(), f_f[:, K.FF_QTY])
            assert np.array_equal(fills.fee.to_numpy(), f_f[:, K.FF_FEE])
            cash0 = rec.cash.iloc[k0]
            assert np.allclose(recs[:, K.R_CASH], rec.cash.iloc[k0:k1].to_numpy() - cash0, rtol=0, atol=1e-9)
            assert np.array_equal(recs[:, K.R_POS], rec.position.iloc[k0:k1].to_numpy() - rec.position.iloc[k0])
        # the local view is the market's, whatever the agent did
        assert np.array_equal(recs[:, K.R_BID].astype(np.int64), rec.best_bid.iloc[k0:k1].to_numpy())
        assert np.array_equal(recs[:, K.R_ASK].astype(np.int64), rec.best_ask.iloc[k0:k1].to_numpy())


def test_begin_anywhere_restores_the_market_of_that_step():
    market = synthetic_market(20_000, seed=5)
    cfg = EngineConfig(decision_interval_ms=20, episode_mode="session")
    out = run_backtest(market, Skew(Skew.Config()), cfg)
    replay = Replay(market, cfg, snapshot_every=100)
    stepper = replay.stepper()
    s, e, k0, k1 = replay.episodes[0]
    for k in (k0, k0 + 1, k0 + 99, k0 + 100, k0 + 257, k1 - 3):
        view = stepper.begin(k, k + 2, replay.times[k + 1] + 1)
        assert view[:2] == (out.steps.best_bid.iloc[k], out.steps.best_ask.iloc[k])
        view = stepper.step(NO_PRICE, 0.0, NO_PRICE, 0.0)
        assert view[:2] == (out.steps.best_bid.iloc[k + 1], out.steps.best_ask.iloc[k + 1])
        assert stepper.finish(NO_PRICE, 0.0, NO_PRICE, 0.0) == 0.0
    with pytest.raises(ValueError):
        stepper.begin(k1 - 1, k1 + 5, e)
