from __future__ import annotations

import numpy as np
import pandas as pd

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, EVENT_COLUMNS
from cmm_bt.data.snapshots import snapshots_to_events


def _rows(ev: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in ev[["exch_ts", "ev", "side", "price", "qty"]].itertuples(index=False)]


def test_first_snapshot_clears_then_emits_all_levels_and_diffs_follow():
    ts = np.array([10, 20, 30])
    bp = np.array([[100, 99], [100, 99], [101, 100]])
    bq = np.array([[1.0, 2.0], [5.0, 2.0], [3.0, 5.0]])
    ap = np.array([[102, 103], [102, 103], [102, 0]])
    aq = np.array([[4.0, 6.0], [4.0, 6.0], [4.0, 0.0]])
    ev = snapshots_to_events(ts, ts + 1, bp, bq, ap, aq)
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert dict(ev.dtypes.astype(str)) == EVENT_COLUMNS
    assert _rows(ev) == _expected_third(ev)
    assert (ev["local_ts"] == ev["exch_ts"] + 1).all()


def _expected_third(ev):
    # row 3: bid 99 disappeared -> 0; ask 103 disappeared -> 0; bid 101 is new (3.0);
    # bid 100 keeps qty 5.0 (same price, same qty) -> no event
    return [
        (10, CLEAR, BID, 0, 0.0), (10, CLEAR, ASK, 0, 0.0),
        (10, BOOK, BID, 100, 1.0), (10, BOOK, BID, 99, 2.0),
        (10, BOOK, ASK, 102, 4.0), (10, BOOK, ASK, 103, 6.0),
        (20, BOOK, BID, 100, 5.0),
        (30, BOOK, BID, 99, 0.0), (30, BOOK, ASK, 103, 0.0),
        (30, BOOK, BID, 101, 3.0),
    ]


def test_nan_levels_are_empty_and_reset_rows_reemit_everything():
    ts = np.array([1, 2, 3])
    bp = np.array([[100.0, np.nan], [100.0, np.nan], [100.0, np.nan]])
    bq = np.array([[1.0, np.nan], [1.0, np.nan], [1.0, np.nan]])
    ap = np.array([[101.0], [101.0], [101.0]])
    aq = np.array([[2.0], [2.0], [2.0]])
    ev = snapshots_to_events(ts, None, bp, bq, ap, aq, reset=np.array([False, False, True]))
    assert _rows(ev) == [
        (1, CLEAR, BID, 0, 0.0), (1, CLEAR, ASK, 0, 0.0), (1, BOOK, BID, 100, 1.0), (1, BOOK, ASK, 101, 2.0),
        (3, CLEAR, BID, 0, 0.0), (3, CLEAR, ASK, 0, 0.0), (3, BOOK, BID, 100, 1.0), (3, BOOK, ASK, 101, 2.0),
    ]


def _replay_full(ev: pd.DataFrame) -> dict[int, tuple[dict, dict]]:
    """Reference book after each timestamp (all its events applied), in pure Python."""
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    out = {}
    rows = list(ev[["exch_ts", "ev", "side", "price", "qty"]].itertuples(index=False, name=None))
    for i, (ts, kind, side, price, qty) in enumerate(rows):
        book = bids if side == BID else asks
        if kind == CLEAR:
            book.clear()
        elif kind == BOOK:
            if qty > 0:
                book[price] = qty
            else:
                book.pop(price, None)
        if i + 1 == len(rows) or rows[i + 1][0] != ts:
            out[ts] = (dict(bids), dict(asks))
    return out


def test_replaying_the_events_rebuilds_every_real_cme_snapshot(data_root):
    q = pd.read_parquet(data_root / "cme/gc_m3_20230501_quotes.parquet").reset_index().iloc[:3000]
    ts = q["transact_time"].to_numpy().astype("datetime64[ns]").view(np.int64)
    f = lambda p: q[[f"{p}_{i}" for i in range(5)]].to_numpy()  # noqa: E731
    bp, ap = np.rint(f("bid_price") / 0.1), np.rint(f("offer_price") / 0.1)
    ev = snapshots_to_events(ts, None, bp, f("bid_quantity"), ap, f("offer_quantity"))
    assert len(ev) < 3000 * 10  # diffs, not full snapshots
    states = _replay_full(ev)
    bq, aq = f("bid_quantity"), f("offer_quantity")
    last_state = None
    for i in range(len(q)):
        state = states.get(ts[i], last_state)
        last_state = state
        bids, asks = state
        assert bids == {int(p): float(x) for p, x in zip(bp[i], bq[i])}
        assert asks == {int(p): float(x) for p, x in zip(ap[i], aq[i])}


def test_gold_day_converts_in_a_few_seconds(data_root):
    import time

    q = pd.read_parquet(data_root / "cme/gc_m3_20230501_quotes.parquet").reset_index()
    ts = q["transact_time"].to_numpy().astype("datetime64[ns]").view(np.int64)
    f = lambda p: q[[f"{p}_{i}" for i in range(5)]].to_numpy()  # noqa: E731
    t0 = time.perf_counter()
    ev = snapshots_to_events(ts, None, np.rint(f("bid_price") / 0.1), f("bid_quantity"),
                             np.rint(f("offer_price") / 0.1), f("offer_quantity"))
    assert time.perf_counter() - t0 < 8.0
    assert len(q) == 257_891 and ev["exch_ts"].is_monotonic_increasing
