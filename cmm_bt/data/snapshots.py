"""Top-K book snapshots to BOOK events (diffs between consecutive snapshots), vectorised.

Rule, per side, for snapshot ``i`` against snapshot ``i - 1``:

* a visible level ``(price, qty)`` whose price was not visible before, or whose quantity changed,
  gives ``BOOK(price, qty)``;
* a price visible before and no longer visible gives ``BOOK(price, 0)`` (the level is deleted; a
  level pushed below the K visible ones is deleted too, since nothing is known of it any more).

The first snapshot (and every row flagged in ``reset``) emits ``CLEAR`` for both sides followed by
all its levels.  Within one snapshot the events come in this order: CLEAR bid, CLEAR ask,
deletions (bid, ask), then sets (bid best to worst, ask best to worst); deleting first keeps the
intermediate book from crossing.

Empty levels are price ``0`` (or NaN) or quantity ``<= 0``/NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, EVENT_COLUMNS


def _clean(px: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(px, dtype=np.float64)
    q = np.asarray(qty, dtype=np.float64)
    if p.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"price and quantity arrays must be 2-D of equal shape, got {p.shape} and {q.shape}")
    empty = ~(p > 0) | ~(q > 0)
    p = np.where(empty, 0, p).astype(np.int64)
    q = np.where(empty, 0.0, q)
    return p, q


def _side_diff(p: np.ndarray, q: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(deleted_prev [n, K], set_now [n, K])`` for one side."""
    n, k = p.shape
    prev_p = np.empty_like(p)
    prev_q = np.empty_like(q)
    prev_p[0] = 0
    prev_q[0] = 0.0
    prev_p[1:] = p[:-1]
    prev_q[1:] = q[:-1]
    prev_p[reset] = 0  # a reset row compares against an empty book (and deletes nothing)
    # match[i, a, b]: level a of row i has the price of level b of row i-1
    match = (p[:, :, None] == prev_p[:, None, :]) & (p[:, :, None] > 0)
    same = (match & (q[:, :, None] == prev_q[:, None, :])).any(axis=2)
    set_now = (p > 0) & ~same
    deleted = (prev_p > 0) & ~match.any(axis=1)
    return deleted, set_now


def snapshots_to_events(
    ts_exch: np.ndarray,
    ts_local: np.ndarray | None,
    bid_px: np.ndarray,
    bid_qty: np.ndarray,
    ask_px: np.ndarray,
    ask_qty: np.ndarray,
    reset: np.ndarray | None = None,
) -> pd.DataFrame:
    """BOOK/CLEAR events from snapshots ``[n, K]`` (prices already in integer ticks).

    :param ts_exch: exchange time of each snapshot, ns (non-decreasing).
    :param ts_local: local time of each snapshot, ns (``None``: same as ``ts_exch``).
    :param reset: optional boolean mask of rows re-emitted in full after CLEAR (row 0 always is);
        use it where the book is not continuous (a new file, a new contract).
    :returns: an event table with ``EVENT_COLUMNS`` in time order (no TRADE events).
    """
    ts_exch = np.asarray(ts_exch, dtype=np.int64)
    ts_local = ts_exch if ts_local is None else np.asarray(ts_local, dtype=np.int64)
    bp, bq = _clean(bid_px, bid_qty)
    ap, aq = _clean(ask_px, ask_qty)
    n, k = bp.shape
    if ap.shape[0] != n or ts_exch.shape[0] != n or ts_local.shape[0] != n:
        raise ValueError("snapshot arrays must have the same number of rows")
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_COLUMNS.items()})
    rs = np.zeros(n, dtype=bool) if reset is None else np.asarray(reset, dtype=bool).copy()
    rs[0] = True

    b_del, b_set = _side_diff(bp, bq, rs)
    a_del, a_set = _side_diff(ap, aq, rs)
    ka = ap.shape[1]
    # slots per row: [CLEAR bid, CLEAR ask, del bid (k), del ask (ka), set bid (k), set ask (ka)]
    prev_bp = np.vstack([np.zeros((1, k), np.int64), bp[:-1]])
    prev_ap = np.vstack([np.zeros((1, ka), np.int64), ap[:-1]])
    mask = np.concatenate([rs[:, None], rs[:, None], b_del, a_del, b_set, a_set], axis=1)
    zeros_i = np.zeros((n, 1), np.int64)
    price = np.concatenate([zeros_i, zeros_i, prev_bp, prev_ap, bp, ap], axis=1)
    qty = np.concatenate([np.zeros((n, 2 + k + ka)), bq, aq], axis=1)
    side_row = np.concatenate([[BID, ASK], np.full(k, BID), np.full(ka, ASK), np.full(k, BID), np.full(ka, ASK)])
    ev_row = np.concatenate([[CLEAR, CLEAR], np.full(2 * (k + ka), BOOK)])

    rows, cols = np.nonzero(mask)  # row-major: time order, then slot order
    return pd.DataFrame({
        "exch_ts": ts_exch[rows],
        "local_ts": ts_local[rows],
        "ev": ev_row[cols].astype(np.int8),
        "side": side_row[cols].astype(np.int8),
        "price": price[rows, cols],
        "qty": qty[rows, cols].astype(np.float64),
    })
