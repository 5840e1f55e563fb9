from __future__ import annotations

import numpy as np
import pytest

from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events
from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt.errors import DataError
from cmm_bt_plugins.features.market import TASKS, WindowSpec, build_feature_set, feature_names

S = 1_000_000_000


def _market(rows, latency=0):
    ts, ev, side, price, qty = map(np.array, zip(*rows))
    return MarketData(make_events(exch_ts=ts, local_ts=ts + latency, ev=ev, side=side, price=price, qty=qty), Instrument("T", 0.5))


def test_defaults_and_feature_names():
    spec = WindowSpec()
    assert (spec.window, spec.levels, spec.horizon) == (32, 5, 10)
    names = feature_names(5)
    assert len(names) == 25 and names[:2] == ["bid_px_1", "bid_px_2"] and names[-5:] == ["dmid", "spread", "flow", "volume", "rvol"]


def test_hand_built_book_features_and_targets():
    # mid path at grid times 1..6 s: 100.5, 100.5, 101.0, 102.0, 102.0, 101.5
    rows = [
        (int(0.5 * S), BOOK, BID, 100, 2), (int(0.5 * S), BOOK, ASK, 101, 3),
        (int(1.5 * S), TRADE, 1, 101, 4),                                        # buy 4
        (int(2.5 * S), BOOK, BID, 101, 1), (int(2.5 * S), BOOK, ASK, 101, 0), (int(2.5 * S), BOOK, ASK, 101.0, 0),
        (int(2.6 * S), BOOK, ASK, 101, 0), (int(2.6 * S), BOOK, ASK, 102, 5), (int(2.6 * S), BOOK, BID, 100, 0),
        (int(3.5 * S), TRADE, -1, 101, 2),                                       # sell 2
        (int(3.6 * S), BOOK, BID, 101, 0), (int(3.6 * S), BOOK, BID, 100, 0), (int(3.6 * S), BOOK, ASK, 104, 1),
        (int(3.6 * S), BOOK, BID, 100, 0), (int(3.7 * S), BOOK, BID, 100, 0), (int(3.8 * S), BOOK, BID, 100, 6),
        (int(3.9 * S), BOOK, ASK, 102, 0), (int(3.9 * S), BOOK, BID, 100, 0), (int(3.9 * S), BOOK, BID, 101, 2),
        (int(3.9 * S), BOOK, ASK, 103, 2),
        (int(4.5 * S), TRADE, 1, 103, 1),
        (int(5.5 * S), BOOK, ASK, 103, 0), (int(5.5 * S), BOOK, BID, 101, 0), (int(5.5 * S), BOOK, BID, 100, 1),
        (int(5.5 * S), BOOK, ASK, 103, 3),
    ]
    m = _market(rows)
    grid = np.arange(1, 7) * S
    fs = build_feature_set(m, grid, WindowSpec(window=2, levels=2, horizon=2))
    # books: t1 100/101, t2 100/101, t3 101/102, t4 101/103 (ask 104 behind), t5 same, t6 100/103
    np.testing.assert_allclose(fs.mid, [100.5, 100.5, 101.5, 102.0, 102.0, 101.5])
    np.testing.assert_allclose(fs.spread_now, [1, 1, 1, 2, 2, 3])
    c = fs.col
    last = fs.X[:, -1, :]
    np.testing.assert_allclose(last[:, c("bid_px_1")], [-0.5, -0.5, -0.5, -1.0, -1.0, -1.5])
    np.testing.assert_allclose(last[3, c("ask_px_2")], 2.0)          # 104 - 102
    np.testing.assert_allclose(last[0, c("bid_px_2")], -1.5)         # missing level: one tick beyond
    np.testing.assert_allclose(last[0, c("bid_sz_1")], np.log1p(2))
    np.testing.assert_allclose(last[:, c("dmid")], [0, 0, 1.0, 0.5, 0, -0.5])
    np.testing.assert_allclose(last[:, c("flow")], [0, np.log1p(4), 0, -np.log1p(2), np.log1p(1), 0])
    np.testing.assert_allclose(last[:, c("volume")], np.log1p([0, 4, 0, 2, 1, 0]))
    np.testing.assert_allclose(last[2, c("rvol")], np.sqrt((0 + 1.0) / 2))
    # window: X[i, 0] is the previous grid step
    np.testing.assert_array_equal(fs.X[3, 0], fs.X[2, 1])
    # targets over H=2 steps
    assert fs.target_valid.tolist() == [True, True, True, True, False, False]
    np.testing.assert_allclose(fs.targets["mid"][:4], [1.0, 1.5, 0.5, -0.5])
    np.testing.assert_allclose(fs.targets["spread"][:4], [1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(fs.targets["volume"][:4], np.log1p([4, 2, 3, 1]))
    assert fs.targets.iloc[4:].isna().all().all()
    # naive: last-H volume, current spread, zero mid
    np.testing.assert_allclose(fs.volume_past, np.log1p([0, 4, 4, 2, 3, 1]))
    assert list(fs.naive().columns) == list(TASKS)


def test_episode_boundary_invalidates_targets():
    m = synthetic_market(3000, seed=1)
    grid = np.arange(m.start_ns + 5 * 10**8, m.end_ns, 10**8)
    eps = (np.arange(grid.size) >= grid.size // 2).astype(np.int32)
    fs = build_feature_set(m, grid, WindowSpec(window=4, levels=3, horizon=5), eps)
    b = grid.size // 2
    assert not fs.target_valid[b - 5:b].any()
    assert fs.target_valid[b:b + 3].all() and fs.target_valid[: b - 5].all()


def test_no_look_ahead():
    m = synthetic_market(4000, seed=3, feed_latency_us=300.0)
    grid = np.arange(m.start_ns + 3 * 10**8, m.end_ns, 10**8)
    spec = WindowSpec(window=8, levels=5, horizon=4)
    base = build_feature_set(m, grid, spec)
    rng = np.random.default_rng(0)
    for j in (5, grid.size // 2, grid.size - 3):
        t = grid[j]
        ev = m.events.copy()
        after = ev["local_ts"].to_numpy() > t
        assert after.any()
        k = int(after.sum())
        ev.loc[after, "price"] = ev.loc[after, "price"].to_numpy() + rng.integers(-3, 4, k)
        ev.loc[after, "qty"] = rng.integers(0, 50, k).astype(float)
        ev.loc[after, "side"] = np.where(rng.random(k) < 0.5, 1, -1).astype(np.int8)
        fs = build_feature_set(MarketData(ev, m.instrument), grid, spec)
        np.testing.assert_array_equal(fs.X[: j + 1], base.X[: j + 1])
        for name in ("mid", "spread_now", "realised_vol", "volume_past", "book_valid"):
            np.testing.assert_array_equal(getattr(fs, name)[: j + 1], getattr(base, name)[: j + 1])
        assert not np.array_equal(fs.X[j + 1:], base.X[j + 1:])  # the perturbation is visible later


def test_view_shape_dtype_and_hash():
    m = synthetic_market(2000, seed=2)
    grid = np.arange(m.start_ns + 10**8, m.end_ns, 5 * 10**7)
    fs = build_feature_set(m, grid, WindowSpec(window=16, levels=4, horizon=3))
    assert fs.X.shape == (grid.size, 16, 21) and fs.X.dtype == np.float32
    assert np.isfinite(fs.X).all()
    assert fs.data_hash() == build_feature_set(m, grid, WindowSpec(window=16, levels=4, horizon=3)).data_hash()
    assert fs.data_hash() != build_feature_set(m, grid[1:], WindowSpec(window=16, levels=4, horizon=3)).data_hash()


def test_bad_grid_is_a_data_error():
    m = synthetic_market(500, seed=2)
    with pytest.raises(DataError, match="backwards at row 2"):
        build_feature_set(m, np.array([m.start_ns + 3, m.start_ns + 5, m.start_ns + 4]))
    with pytest.raises(DataError):
        build_feature_set(m, np.array([], dtype=np.int64))
