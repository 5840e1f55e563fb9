"""Replay BOOK/CLEAR events to the best bid and ask after every event (numba kernel).

Prices are mapped to a dense index over the distinct prices of the stream, so memory is
``O(distinct prices)`` whatever the price range (Binance books carry far-away levels such as
1000.00 USDT next to 61,800).  A deletion of the best level scans to the next live level.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from cmm_bt.data.schema import BID, BOOK, CLEAR

#: Best price reported for an empty side.
NO_PRICE: int = -1


@numba.njit(inline="always")
def apply_level_event(bq, aq, best_b, best_a, e, s, j, q, book_ev, clear_ev, bid_side):  # pragma: no cover - compiled
    """Apply one event to dense per-side quantity arrays; return the new ``(best_b, best_a)``.

    ``best_b`` is -1 and ``best_a`` is ``len(aq)`` for an empty side; deleting the best level scans
    to the next live one.  TRADE (any other kind) leaves the book as it is.
    """
    m = aq.shape[0]
    if e == clear_ev:
        if s == bid_side:
            bq[:] = 0.0
            best_b = -1
        else:
            aq[:] = 0.0
            best_a = m
    elif e == book_ev:
        if s == bid_side:
            bq[j] = q
            if q > 0.0:
                if j > best_b:
                    best_b = j
            elif j == best_b:
                k = j - 1
                while k >= 0 and bq[k] <= 0.0:
                    k -= 1
                best_b = k
        else:
            aq[j] = q
            if q > 0.0:
                if j < best_a:
                    best_a = j
            elif j == best_a:
                k = j + 1
                while k < m and aq[k] <= 0.0:
                    k += 1
                best_a = k
    return best_b, best_a


@numba.njit(cache=True)
def _replay(ev, side, pidx, qty, prices, book_ev, clear_ev, bid_side):  # pragma: no cover - compiled
    n = ev.shape[0]
    m = prices.shape[0]
    bq = np.zeros(m)
    aq = np.zeros(m)
    best_b = -1  # dense index, -1 = empty
    best_a = m  # m = empty
    out_bb = np.empty(n, np.int64)
    out_ba = np.empty(n, np.int64)
    out_bq = np.empty(n)
    out_aq = np.empty(n)
    for i in range(n):
        best_b, best_a = apply_level_event(bq, aq, best_b, best_a, ev[i], side[i], pidx[i], qty[i], book_ev, clear_ev, bid_side)
        if best_b >= 0:
            out_bb[i] = prices[best_b]
            out_bq[i] = bq[best_b]
        else:
            out_bb[i] = -1
            out_bq[i] = 0.0
        if best_a < m:
            out_ba[i] = prices[best_a]
            out_aq[i] = aq[best_a]
        else:
            out_ba[i] = -1
            out_aq[i] = 0.0
    return out_bb, out_ba, out_bq, out_aq


def dense_levels(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ev, side, pidx, qty, prices)``: the event columns with each BOOK price mapped to an index
    into ``prices`` (the distinct BOOK prices, ascending), as the replay kernels take them."""
    ev = events["ev"].to_numpy(np.int8)
    price = events["price"].to_numpy(np.int64)
    is_book = ev == BOOK
    prices, inv = np.unique(price[is_book], return_inverse=True)
    pidx = np.zeros(len(ev), np.int64)
    pidx[is_book] = inv
    if prices.size == 0:
        prices = np.zeros(1, np.int64)
    return ev, events["side"].to_numpy(np.int8), pidx, events["qty"].to_numpy(np.float64), prices.astype(np.int64)


def top_of_book(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(best_bid, best_ask, bid_qty, ask_qty)`` after each event, aligned with ``events``.

    TRADE events leave the book as it is.  An empty side gives price :data:`NO_PRICE` and qty 0.
    """
    return _replay(*dense_levels(events), np.int8(BOOK), np.int8(CLEAR), np.int8(BID))


__all__ = ["NO_PRICE", "apply_level_event", "dense_levels", "top_of_book"]
