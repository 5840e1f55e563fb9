"""Dense L2 book over integer tick indices, shared by the exchange kernel and the local-view pass.

A book is a ``float64[2, n]`` array: row 0 holds bid quantities, row 1 ask quantities, column ``j``
is the price ``offset + j`` in ticks.  Best prices live in an ``int64[2]`` array ``bests``:
``bests[0]`` is the best bid index (``-1`` when the bid side is empty) and ``bests[1]`` the best
ask index (``n`` when empty).  A level update that crosses the other side deletes the crossed
opposite levels (the newer information wins), so the book is never crossed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR

#: Extra ticks added on each side of the data's price range (room for quotes away from the data).
PRICE_MARGIN = 2000
#: Refuse dense books larger than this many ticks (memory guard).
MAX_TICKS = 50_000_000


@njit(cache=True)
def scan_down(row, start, lo):
    """Highest index in ``[lo, start]`` with positive quantity, or -1."""
    j = start
    while j >= lo:
        if row[j] > 0.0:
            return j
        j -= 1
    return -1


@njit(cache=True)
def scan_up(row, start, hi, n):
    """Lowest index in ``[start, hi]`` with positive quantity, or ``n``."""
    j = max(start, 0)
    while j <= hi:
        if row[j] > 0.0:
            return j
        j += 1
    return n


def new_bests(n: int) -> np.ndarray:
    """Empty-book ``bests``: best bid, best ask, then the lowest / highest index ever set per side."""
    return np.array([-1, n, n, -1, n, -1], dtype=np.int64)


@njit(cache=True)
def book_set(book, bests, row, p, q):
    """Set level ``p`` of side ``row`` (0 bid, 1 ask) to ``q``; keep bests; return the previous qty."""
    n = book.shape[1]
    prev = book[row, p]
    book[row, p] = q
    if q > 0.0:
        w = 2 + 2 * row
        if p < bests[w]:
            bests[w] = p
        if p > bests[w + 1]:
            bests[w + 1] = p
    if row == 0:
        if q > 0.0:
            if p > bests[0]:
                bests[0] = p
            if bests[1] <= p:  # crossed: the asks at or below the new bid are gone
                for j in range(bests[1], p + 1):
                    book[1, j] = 0.0
                bests[1] = scan_up(book[1], p + 1, bests[5], n)
        elif p == bests[0]:
            bests[0] = scan_down(book[0], p - 1, bests[2])
    else:
        if q > 0.0:
            if p < bests[1]:
                bests[1] = p
            if bests[0] >= p:
                for j in range(p, bests[0] + 1):
                    book[0, j] = 0.0
                bests[0] = scan_down(book[0], p - 1, bests[2])
        elif p == bests[1]:
            bests[1] = scan_up(book[1], p + 1, bests[5], n)
    return prev


@njit(cache=True)
def book_clear(book, bests, row):
    """Drop one side of the book (only the span ever written is touched)."""
    n = book.shape[1]
    w = 2 + 2 * row
    for j in range(bests[w], bests[w + 1] + 1):
        book[row, j] = 0.0
    bests[w] = n
    bests[w + 1] = -1
    if row == 0:
        bests[0] = -1
    else:
        bests[1] = n


@njit(cache=True)
def apply_market_event(book, bests, kind, side, p, q):
    """Apply one BOOK or CLEAR event (TRADE events do not change an L2 book)."""
    if kind == BOOK:
        book_set(book, bests, 0 if side == BID else 1, p, q)
    elif kind == CLEAR:
        book_clear(book, bests, 0 if side == BID else 1)


@njit(cache=True)
def local_top_of_book(lts, kind, side, px, qty, book, bests, queries):
    """Top of the book as seen locally at each query time (ascending).

    The event arrays are in local-time order (``lts`` ascending); at query ``t`` all events with
    ``lts <= t`` are in.  Returns best bid / ask indices (the last valid value is kept
    while a side is empty, -1 / ``n`` before it was ever seen), their quantities and a two-sided flag.
    ``book`` / ``bests`` are empty work arrays (``np.zeros((2, n))``, :func:`new_bests`).
    """
    n = book.shape[1]
    m = queries.shape[0]
    bb = np.empty(m, dtype=np.int64)
    ba = np.empty(m, dtype=np.int64)
    bq = np.zeros(m)
    aq = np.zeros(m)
    two = np.zeros(m, dtype=np.bool_)
    last_b = -1
    last_a = n
    k = 0
    ne = lts.shape[0]
    for i in range(m):
        t = queries[i]
        while k < ne and lts[k] <= t:
            e = k
            apply_market_event(book, bests, kind[e], side[e], px[e], qty[e])
            k += 1
        if bests[0] >= 0:
            last_b = bests[0]
            bq[i] = book[0, bests[0]]
        if bests[1] < n:
            last_a = bests[1]
            aq[i] = book[1, bests[1]]
        bb[i] = last_b
        ba[i] = last_a
        two[i] = bests[0] >= 0 and bests[1] < n
    return bb, ba, bq, aq, two


@njit(cache=True)
def first_two_sided(lts, kind, side, px, qty, book, bests, starts, ends):
    """For each window ``[starts[j], ends[j])`` (ascending), the first local time ``>= starts[j]`` at which
    the local book is two-sided, or -1 when it never is inside the window."""
    n = book.shape[1]
    m = starts.shape[0]
    out = np.full(m, -1, dtype=np.int64)
    k = 0
    ne = lts.shape[0]
    for j in range(m):
        t = starts[j]
        while k < ne and lts[k] <= t:
            e = k
            apply_market_event(book, bests, kind[e], side[e], px[e], qty[e])
            k += 1
        if bests[0] >= 0 and bests[1] < n:
            out[j] = t
            continue
        while k < ne and lts[k] < ends[j]:
            tk = lts[k]
            while k < ne and lts[k] == tk:
                e = k
                apply_market_event(book, bests, kind[e], side[e], px[e], qty[e])
                k += 1
            if bests[0] >= 0 and bests[1] < n:
                out[j] = tk
                break
    return out


def price_grid(price: np.ndarray, ev: np.ndarray) -> tuple[int, int]:
    """``(offset, n)`` of a dense book covering the prices of BOOK and TRADE events plus a margin."""
    from cmm_bt.errors import DataError

    mask = ev != CLEAR
    if not mask.any():
        raise DataError("no BOOK or TRADE events to replay", key="price")
    p = price[mask]
    lo, hi = int(p.min()), int(p.max())
    n = hi - lo + 1 + 2 * PRICE_MARGIN
    if n > MAX_TICKS:
        raise DataError(f"price range of {hi - lo} ticks is too wide for the dense book (max {MAX_TICKS})", key="price")
    return lo - PRICE_MARGIN, n


__all__ = [
    "ASK",
    "BID",
    "PRICE_MARGIN",
    "apply_market_event",
    "book_clear",
    "book_set",
    "first_two_sided",
    "local_top_of_book",
    "price_grid",
]
