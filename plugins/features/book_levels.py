"""Top-K book levels at query points: a small numba replay of BOOK/CLEAR events.

:func:`top_levels_at` applies the events in stream order and, at each query point (a number of
events already applied), records the K best price levels of each side.  Like
:mod:`cmm_bt.data.topofbook`, prices are mapped to a dense index over the distinct BOOK prices of
the stream, so memory is ``O(distinct prices)``; the best index of each side is tracked and the
next K live levels are found by scanning outwards from it.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from cmm_bt.data.schema import BID, BOOK, CLEAR

#: Price reported for a missing level (empty side or fewer than K levels).
NO_LEVEL: int = -1


@numba.njit(cache=True)
def _replay_levels(ev, side, pidx, qty, prices, counts, k, book_ev, clear_ev, bid_side):  # pragma: no cover
    n = ev.shape[0]
    m = prices.shape[0]
    nq = counts.shape[0]
    bq = np.zeros(m)
    aq = np.zeros(m)
    best_b = -1
    best_a = m
    bpx = np.full((nq, k), -1, np.int64)
    apx = np.full((nq, k), -1, np.int64)
    bsz = np.zeros((nq, k))
    asz = np.zeros((nq, k))
    q = 0
    i = 0
    while q < nq:
        # apply events until `counts[q]` of them are applied
        while i < counts[q] and i < n:
            e = ev[i]
            if e == clear_ev:
                if side[i] == bid_side:
                    bq[:] = 0.0
                    best_b = -1
                else:
                    aq[:] = 0.0
                    best_a = m
            elif e == book_ev:
                j = pidx[i]
                x = qty[i]
                if side[i] == bid_side:
                    bq[j] = x
                    if x > 0.0:
                        if j > best_b:
                            best_b = j
                    elif j == best_b:
                        t = j - 1
                        while t >= 0 and bq[t] <= 0.0:
                            t -= 1
                        best_b = t
                else:
                    aq[j] = x
                    if x > 0.0:
                        if j < best_a:
                            best_a = j
                    elif j == best_a:
                        t = j + 1
                        while t < m and aq[t] <= 0.0:
                            t += 1
                        best_a = t
            i += 1
        # record the top-k of each side
        lvl = 0
        t = best_b
        while t >= 0 and lvl < k:
            if bq[t] > 0.0:
                bpx[q, lvl] = prices[t]
                bsz[q, lvl] = bq[t]
                lvl += 1
            t -= 1
        lvl = 0
        t = best_a
        while t < m and lvl < k:
            if aq[t] > 0.0:
                apx[q, lvl] = prices[t]
                asz[q, lvl] = aq[t]
                lvl += 1
            t += 1
        q += 1
    return bpx, bsz, apx, asz


def top_levels_at(events: pd.DataFrame, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The K best levels per side after the first ``counts[q]`` events, for each query ``q``.

    :param events: normalised events (``cmm_bt.data.schema``), in stream order.
    :param counts: non-decreasing numbers of events applied (0 = empty book), int64 ``[Q]``.
    :param k: levels per side.
    :returns: ``(bid_px, bid_qty, ask_px, ask_qty)``, each ``[Q, k]``; prices in ticks, best first;
        a missing level has price :data:`NO_LEVEL` and qty 0.  TRADE events leave the book as it is.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.size and np.any(np.diff(counts) < 0):
        raise ValueError("counts must be non-decreasing")
    ev = events["ev"].to_numpy(np.int8)
    price = events["price"].to_numpy(np.int64)
    is_book = ev == BOOK
    prices, inv = np.unique(price[is_book], return_inverse=True)
    pidx = np.zeros(len(ev), np.int64)
    pidx[is_book] = inv
    if prices.size == 0:
        prices = np.zeros(1, np.int64)
    return _replay_levels(
        ev, events["side"].to_numpy(np.int8), pidx, events["qty"].to_numpy(np.float64),
        prices.astype(np.int64), counts, int(k), np.int8(BOOK), np.int8(CLEAR), np.int8(BID),
    )


__all__ = ["NO_LEVEL", "top_levels_at"]
