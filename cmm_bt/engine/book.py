"""L2 book over a compact price ladder, shared by the exchange kernel and the local view.

The **ladder** is the sorted array of distinct prices (ticks) of a replay's BOOK and TRADE events;
an event's ``lv`` is the index of its price on the ladder.  A book is a ``float64[2, nlv]`` array
over ladder indices: row 0 bid quantities, row 1 ask quantities.  Prices without a ladder entry
never carry quantity, so scanning ladder indices finds exactly the levels a dense per-tick array
would, without the memory of a range spanned by a few far-away levels.

``bests`` (``int64[N_BESTS]``, slots ``B_*``): best bid index ``B_BID`` (``-1`` when the bid side
is empty), best ask index ``B_ASK`` (``nlv`` when empty), then the lowest / highest index ever set
on the bid side (``B_BID_LO``, ``B_BID_HI``) and on the ask side (``B_ASK_LO``, ``B_ASK_HI``): the
scan and clear bounds.  Side ``row`` (0 bid, 1 ask) has its bounds at ``span_lo(row)`` and
``span_lo(row) + 1``.  A level update that crosses the other side deletes the crossed
opposite levels (the newer information wins), so the book is never crossed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cmm_bt.data.schema import BID, BOOK, CLEAR

#: Extra ticks on each side of the data's price range inside which quotes are accepted.
PRICE_MARGIN = 2000
#: Widest price range (ticks) whose ladder is built with a bitmap; wider ones use a sort.
BITMAP_MAX_TICKS = 1 << 28
#: ``bests`` slots (see the module docstring).
B_BID, B_ASK, B_BID_LO, B_BID_HI, B_ASK_LO, B_ASK_HI = range(6)
N_BESTS = 6


@njit(cache=True, inline="always")
def span_lo(row):
    """Slot of the lowest index ever set on side ``row`` (0 bid, 1 ask); the highest is the next one."""
    return B_BID_LO + (B_ASK_LO - B_BID_LO) * row


@njit(cache=True, inline="always")
def scan_down(row, start, lo):
    """Highest index in ``[lo, start]`` with positive quantity, or -1."""
    j = start
    while j >= lo:
        if row[j] > 0.0:
            return j
        j -= 1
    return -1


@njit(cache=True, inline="always")
def scan_up(row, start, hi, n):
    """Lowest index in ``[start, hi]`` with positive quantity, or ``n``."""
    j = max(start, 0)
    while j <= hi:
        if row[j] > 0.0:
            return j
        j += 1
    return n


@njit(cache=True)
def new_bests(n):
    """Empty-book ``bests`` over ``n`` ladder levels."""
    bests = np.empty(N_BESTS, dtype=np.int64)
    bests[B_BID] = -1
    bests[B_ASK] = n
    bests[B_BID_LO] = n
    bests[B_BID_HI] = -1
    bests[B_ASK_LO] = n
    bests[B_ASK_HI] = -1
    return bests


@njit(cache=True, inline="always")
def book_set(book, bests, row, p, q):
    """Set level ``p`` of side ``row`` (0 bid, 1 ask) to ``q``; keep bests; return the previous qty."""
    n = book.shape[1]
    prev = book[row, p]
    book[row, p] = q
    if q > 0.0:
        w = span_lo(row)
        if p < bests[w]:
            bests[w] = p
        if p > bests[w + 1]:
            bests[w + 1] = p
    if row == 0:
        if q > 0.0:
            if p > bests[B_BID]:
                bests[B_BID] = p
            if bests[B_ASK] <= p:  # crossed: the asks at or below the new bid are gone
                for j in range(bests[B_ASK], p + 1):
                    book[1, j] = 0.0
                bests[B_ASK] = scan_up(book[1], p + 1, bests[B_ASK_HI], n)
        elif p == bests[B_BID]:
            bests[B_BID] = scan_down(book[0], p - 1, bests[B_BID_LO])
    else:
        if q > 0.0:
            if p < bests[B_ASK]:
                bests[B_ASK] = p
            if bests[B_BID] >= p:
                for j in range(p, bests[B_BID] + 1):
                    book[0, j] = 0.0
                bests[B_BID] = scan_down(book[0], p - 1, bests[B_BID_LO])
        elif p == bests[B_ASK]:
            bests[B_ASK] = scan_up(book[1], p + 1, bests[B_ASK_HI], n)
    return prev


@njit(cache=True, inline="always")
def book_clear(book, bests, row):
    """Drop one side of the book (only the span of ladder indices ever set is touched)."""
    n = book.shape[1]
    w = span_lo(row)
    for j in range(bests[w], bests[w + 1] + 1):
        book[row, j] = 0.0
    bests[w] = n
    bests[w + 1] = -1
    if row == 0:
        bests[B_BID] = -1
    else:
        bests[B_ASK] = n


@njit(cache=True, inline="always")
def apply_market_event(book, bests, kind, side, p, q):
    """Apply one BOOK or CLEAR event at ladder index ``p`` (TRADE events do not change an L2 book)."""
    if kind == BOOK:
        book_set(book, bests, 0 if side == BID else 1, p, q)
    elif kind == CLEAR:
        book_clear(book, bests, 0 if side == BID else 1)


@njit(cache=True)
def apply_local_until(lts, kind, side, lv, qty, perm, book, bests, ptr, until):
    """Apply the events ``perm[ptr[0]:]`` with ``local_ts <= until`` to ``book`` (local-time order);
    ``ptr[0]`` moves past them."""
    k, ne = ptr[0], perm.shape[0]
    while k < ne and lts[perm[k]] <= until:
        e = perm[k]
        apply_market_event(book, bests, kind[e], side[e], lv[e], qty[e])
        k += 1
    ptr[0] = k


@njit(cache=True)
def two_sided_from(lts, kind, side, lv, qty, perm, book, bests, ptr, start, end):
    """The first local time in ``[start, end)`` at which ``book`` is two-sided (``start`` itself when it
    is after the events up to ``start``), or -1; applies events from ``perm[ptr[0]]`` on as it goes."""
    n = book.shape[1]
    apply_local_until(lts, kind, side, lv, qty, perm, book, bests, ptr, start)
    if bests[B_BID] >= 0 and bests[B_ASK] < n:
        return start
    k, ne = ptr[0], perm.shape[0]
    found = -1
    while k < ne and lts[perm[k]] < end:
        tk = lts[perm[k]]
        while k < ne and lts[perm[k]] == tk:
            e = perm[k]
            apply_market_event(book, bests, kind[e], side[e], lv[e], qty[e])
            k += 1
        if bests[B_BID] >= 0 and bests[B_ASK] < n:
            found = tk
            break
    ptr[0] = k
    return found


@njit(cache=True)
def first_two_sided(lts, kind, side, lv, qty, perm, n, starts, ends):
    """For each window ``[starts[j], ends[j])`` (ascending), the first local time ``>= starts[j]`` at which
    the local book is two-sided, or -1 when it never is inside the window.  Events are taken in
    local-time order ``perm``; ``n`` is the ladder size."""
    book = np.zeros((2, n))
    bests = new_bests(n)
    ptr = np.zeros(1, dtype=np.int64)
    out = np.full(starts.shape[0], -1, dtype=np.int64)
    for j in range(starts.shape[0]):
        out[j] = two_sided_from(lts, kind, side, lv, qty, perm, book, bests, ptr, starts[j], ends[j])
    return out


@njit(cache=True, inline="always")
def _popcount(x):
    """Set bits of a uint64."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _price_span(kind, price):
    """Lowest and highest price of the non-CLEAR events (``hi < lo`` when there are none)."""
    lo = np.iinfo(np.int64).max
    hi = np.iinfo(np.int64).min
    for e in range(kind.shape[0]):
        if kind[e] != CLEAR:
            p = price[e]
            if p < lo:
                lo = p
            if p > hi:
                hi = p
    return lo, hi


@njit(cache=True)
def _bitmap_ladder(kind, price, lo, hi):
    """The distinct prices of the non-CLEAR events from a bitmap over ``[lo, hi]``, ascending."""
    nw = ((hi - lo) >> 6) + 1
    bits = np.zeros(nw, dtype=np.uint64)
    for e in range(kind.shape[0]):
        if kind[e] != CLEAR:
            d = price[e] - lo
            bits[d >> 6] |= np.uint64(1) << np.uint64(d & 63)
    n = 0
    for w in range(nw):
        n += _popcount(bits[w])
    ladder = np.empty(n, dtype=np.int64)
    r = 0
    for w in range(nw):
        x = bits[w]
        b = 0
        while x != np.uint64(0):
            if x & np.uint64(1):
                ladder[r] = lo + (w << 6) + b
                r += 1
            x >>= np.uint64(1)
            b += 1
    return ladder


#: A price span whose bitmap has at most this many 64-bit words (8 MB) is always read through one.
BITMAP_MIN_WORDS = 1 << 20


def build_ladder(kind: np.ndarray, price: np.ndarray, bitmap_max: int = BITMAP_MAX_TICKS):
    """``(ladder, lo, hi)``: the distinct prices of the BOOK and TRADE events (ascending) and the lowest /
    highest.  A bitmap of the span when it has no more words than events (or at most
    :data:`BITMAP_MIN_WORDS`), else a sort.  Raises ``DataError`` without such events.  Each event's
    index on the ladder: :func:`cmm_bt.engine.stream.ladder_lookup`."""
    from cmm_bt.errors import DataError

    lo, hi = _price_span(kind, price)
    if hi < lo:
        raise DataError("no BOOK or TRADE events to replay", key="price")
    words = ((hi - lo) >> 6) + 1
    if hi - lo < bitmap_max and words <= max(kind.size, BITMAP_MIN_WORDS):
        ladder = _bitmap_ladder(kind, price, lo, hi)  # linear in the events and the span's words
    else:
        ladder = np.unique(price[kind != CLEAR])
    return ladder, int(lo), int(hi)


@njit(cache=True)
def rank_bitmap(ladder):
    """``(bits, before)``: a bit per tick of the ladder's span set at its prices, and the set bits in the
    words before each (what :func:`ladder_ranks` reads)."""
    lo = ladder[0]
    nw = ((ladder[-1] - lo) >> 6) + 1
    bits = np.zeros(nw, dtype=np.uint64)
    for p in ladder:
        d = p - lo
        bits[d >> 6] |= np.uint64(1) << np.uint64(d & 63)
    before = np.empty(nw, dtype=np.int64)
    n = 0
    for w in range(nw):
        before[w] = n
        n += _popcount(bits[w])
    return bits, before


@njit(cache=True)
def ladder_ranks(price, lo, bits, before):
    """Each price's ladder index (its rank among the set bits of :func:`rank_bitmap`), 0 off the ladder."""
    out = np.zeros(price.shape[0], dtype=np.int64)
    top = bits.shape[0] << 6
    for i in range(price.shape[0]):
        d = price[i] - lo
        if d < 0 or d >= top:
            continue
        w = d >> 6
        bit = np.uint64(1) << np.uint64(d & 63)
        if bits[w] & bit:
            out[i] = before[w] + _popcount(bits[w] & (bit - np.uint64(1)))
    return out


@njit(cache=True, inline="always")
def ladder_index(ladder, price):
    """Ladder index of ``price`` in ticks, or -1 when no event ever had that price."""
    j = np.searchsorted(ladder, price)
    if j < ladder.shape[0] and ladder[j] == price:
        return j
    return -1


__all__ = [
    "B_ASK",
    "B_ASK_HI",
    "B_ASK_LO",
    "B_BID",
    "B_BID_HI",
    "B_BID_LO",
    "N_BESTS",
    "PRICE_MARGIN",
    "apply_market_event",
    "book_clear",
    "book_set",
    "build_ladder",
    "apply_local_until",
    "first_two_sided",
    "two_sided_from",
    "ladder_index",
    "ladder_ranks",
    "rank_bitmap",
    "new_bests",
    "span_lo",
]
