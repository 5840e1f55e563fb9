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
from cmm_bt.data.topofbook import apply_level_event, dense_levels

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
            best_b, best_a = apply_level_event(bq, aq, best_b, best_a, ev[i], side[i], pidx[i], qty[i], book_ev, clear_ev, bid_side)
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
    return _replay_levels(*dense_levels(events), counts, int(k), np.int8(BOOK), np.int8(CLEAR), np.int8(BID))


__all__ = ["NO_LEVEL", "top_levels_at"]
