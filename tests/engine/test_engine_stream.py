"""A market replayed a chunk at a time (cmm_bt.engine.stream) gives exactly the replay of the whole market."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.data.schema import MarketData
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.stream import market_ladder
from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt.errors import DataError
from cmm_bt_plugins.execution.fixed_spread import FixedSpread


class Chunked(MarketData):
    """The same market, handed over ``size`` rows at a time."""

    size = 1000

    def chunks(self, columns=None):
        ev = self.events if columns is None else self.events[list(columns)]
        for a in range(0, len(ev), self.size):
            yield ev.iloc[a:a + self.size]


class Skew(ExecutionPolicy):
    """Joins / improves / crosses by turns and leans against the position (fills on most steps)."""

    name = "skew-stream-test"

    def quote(self, s: DecisionState) -> Quotes:
        shift = s.step % 3 - 1
        lean = int(round(s.position))
        return Quotes(s.best_bid + shift - lean, 1.0, s.best_ask - shift - lean, 1.0 + s.step % 2)


def _market(jitter_us: float, seed: int = 5) -> MarketData:
    """Three sessions with gaps; local times jittered (their order differs from the exchange order)."""
    m = synthetic_market(30_000, seed=seed, mean_gap_us=500.0)
    ev = m.events.copy()
    rng = np.random.default_rng(seed)
    ev["local_ts"] = ev["exch_ts"] + (rng.random(len(ev)) * jitter_us * 1000).astype(np.int64)
    ts = ev["exch_ts"].to_numpy()
    cut = [ts[0], ts[9_000], ts[18_000], ts[-1] + 1]
    sessions = [(int(cut[0]), int(cut[1]) - 1_000_000), (int(cut[1]), int(cut[2])), (int(cut[2]) + 5_000_000, int(cut[3]))]
    return MarketData(ev, m.instrument, sessions)


def _same(a, b) -> None:
    for name in ("steps", "fills", "episodes"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "steps":
            x, y = x.drop(columns="decision_latency_ns"), y.drop(columns="decision_latency_ns")
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)
    assert a.counters == b.counters


@pytest.mark.parametrize("size", [97, 5000])
@pytest.mark.parametrize("mode,flatten,feed", [("fixed", True, 0.0), ("session", False, 300.0)])
def test_a_chunked_market_replays_exactly_as_the_whole_market(size, mode, flatten, feed):
    whole = _market(jitter_us=3000.0)
    chunked = Chunked(whole.events, whole.instrument, whole.sessions)
    chunked.size = size
    cfg = EngineConfig(decision_interval_ms=5, episode_mode=mode, episode_length_s=2.0, flatten_at_episode_end=flatten,
                       feed_latency_us=feed, position_limit=5.0, queue_model="power-prob", post_only=False)
    for a, b in zip(decision_grid(whole, cfg), decision_grid(chunked, cfg)):
        assert np.array_equal(a, b)
    python = run_backtest(whole, Skew(Skew.Config()), cfg)
    assert len(python.fills) > 30
    _same(python, run_backtest(chunked, Skew(Skew.Config()), cfg))
    fs = FixedSpread(FixedSpread.Config(half_spread_ticks=1.0, skew_ticks_per_unit=0.5, order_qty=1.0, position_limit=5.0))
    _same(run_backtest(whole, fs, cfg), run_backtest(chunked, fs, cfg))
    start = int(whole.sessions[1][0]) + 700_000_000  # a replay of a later span: the earlier chunks are caught up
    _same(run_backtest(whole, fs, cfg, start_ns=start), run_backtest(chunked, fs, cfg, start_ns=start))


def test_the_ladder_is_the_union_of_every_chunk():
    whole = _market(jitter_us=0.0)
    chunked = Chunked(whole.events, whole.instrument, whole.sessions)
    ladder, lo, hi = market_ladder(chunked)
    live = whole.events["ev"].to_numpy() != 2
    assert np.array_equal(ladder, np.unique(whole.events["price"].to_numpy()[live]))
    assert (lo, hi) == (ladder[0], ladder[-1])


def test_time_going_backwards_across_chunks_names_the_row():
    whole = _market(jitter_us=0.0)
    ev = whole.events.copy()
    ev.loc[1500, "exch_ts"] = ev["exch_ts"].iloc[999] - 1  # first row of the second chunk is out of order
    ev.loc[1500:, "local_ts"] = ev.loc[1500:, "exch_ts"]
    bad = Chunked(ev.iloc[500:].reset_index(drop=True), whole.instrument, [])
    with pytest.raises(DataError, match="exch_ts goes backwards at row 1000"):
        run_backtest(bad, Skew(Skew.Config()), EngineConfig())


@pytest.mark.parametrize("rank_max", [1 << 26, 1], ids=["bitmap-ranks", "binary-search"])
def test_ladder_lookup_gives_each_price_its_ladder_index(rank_max, monkeypatch):
    """Prices on the ladder get their index by either lookup (a sparse span of millions of ticks included);
    prices off it (CLEAR rows') get 0."""
    from cmm_bt.engine import stream

    monkeypatch.setattr(stream, "RANK_MAX_TICKS", rank_max)
    rng = np.random.default_rng(3)
    for span in (50, 1_000, 6_200_000):
        ladder = np.unique(rng.integers(10**6, 10**6 + span, 2_000))
        on = rng.choice(ladder, 5_000)
        off = np.setdiff1d(rng.integers(0, 10**6 + span + 100, 5_000), ladder)
        lookup = stream.ladder_lookup(ladder)
        np.testing.assert_array_equal(lookup(on), np.searchsorted(ladder, on))
        assert not lookup(off).any()
