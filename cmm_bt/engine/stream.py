"""The replay's events a chunk at a time: memory set by a chunk of the market, not by the dataset.

:meth:`MarketData.chunks` hands the events over in exchange-time order, one chunk at a time (one
chunk for a market held in memory; a row group of the cache for a :class:`~cmm_bt.data.stored.StoredMarket`).
:class:`EventStream` keeps a *buffer*: the events a consumer (the exchange of a replay, or the
local-book scan that places the decision grid) has not yet processed, then the chunks it still needs.
Before an episode ``[s, e)`` the replay calls :meth:`EventStream.cover` so that the buffer holds every
event with ``exch_ts <= e`` (a decision at ``t < e`` needs exactly those: ``local_ts >= exch_ts``).
While it reads chunks, the consumer catches up to a time at which nothing of ours is in the market
(:meth:`Consumer.catch_up`, at most the episode's first decision) and the buffer drops what both its
exchange and its local view have processed.

Why it changes no result: market events change the books the same way however the processing is cut
into calls while no order is working, and the buffer's events keep the order they have in the whole
dataset: exchange order by position, local order by ``(local_ts, position)`` (a stable sort), of which
the locally processed events are always a prefix.  Prices are indices on *one* ladder for the whole
market (:func:`market_ladder`), so a book carried from one buffer to the next keeps its meaning.
``tests/engine/test_engine_stream.py`` replays markets cut into many chunks against the same markets
in one piece.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import pandas as pd
from numba import njit

from cmm_bt.data.schema import CLEAR, MarketData
from cmm_bt.engine.book import build_ladder, ladder_ranks, rank_bitmap
from cmm_bt.errors import DataError

#: The buffer's arrays, in the kernel's order: ``ts, lts, kind, side, lv, qty, perm``.
Events = tuple


class Consumer(Protocol):
    """What reads a stream: its two pointers into the buffer and how it catches up and rebases."""

    def pointers(self) -> tuple[int, int]:
        """``(exchange, local)``: events ``[0, exchange)`` processed in exchange order, ``perm[0, local)``
        in local order."""

    def catch_up(self, until: int) -> None:
        """Process the market events up to ``until`` (no orders are working)."""

    def rebase(self, events: Events, exchange: int, local: int) -> None:
        """Continue on a new buffer with these pointers."""


@njit(cache=True)
def first_decrease(a):
    """First index ``i`` with ``a[i] < a[i - 1]``, or -1."""
    for i in range(1, a.shape[0]):
        if a[i] < a[i - 1]:
            return i
    return -1


def market_ladder(market: MarketData) -> tuple[np.ndarray, int, int]:
    """``(ladder, lo, hi)`` over the whole market: the distinct BOOK and TRADE prices of every chunk
    (kept by a market whose events cannot change, :meth:`MarketData.derived`)."""
    return market.derived("price-ladder", lambda: _ladder(market))


def _ladder(market: MarketData) -> tuple[np.ndarray, int, int]:
    ladder = None
    for chunk in market.chunks(columns=("ev", "price")):
        kind, price = chunk["ev"].to_numpy(np.int8), chunk["price"].to_numpy(np.int64)
        if not (kind != CLEAR).any():
            continue
        part = build_ladder(kind, price)[0]
        ladder = part if ladder is None else np.union1d(ladder, part)
    if ladder is None:
        raise DataError("no BOOK or TRADE events to replay", key="price")
    ladder.flags.writeable = False  # shared by every replay of a market that keeps it
    return ladder, int(ladder[0]), int(ladder[-1])


#: Widest price span (ticks) whose ladder indices come from a bitmap of the span (one bit a tick, 16 MB
#: at most with its word ranks); wider ones are searched.
RANK_MAX_TICKS = 1 << 26


def ladder_lookup(ladder: np.ndarray):
    """A function from prices (ticks) to ladder indices (0 for prices off the ladder, as CLEAR rows'):
    the ladder's rank in a bitmap over its span (a popcount per price, :func:`~cmm_bt.engine.book.ladder_ranks`)
    when the span is at most :data:`RANK_MAX_TICKS`, else a binary search."""
    lo, n = int(ladder[0]), ladder.shape[0]
    span = int(ladder[-1]) - lo + 1
    if span <= RANK_MAX_TICKS:
        bits, before = rank_bitmap(ladder)
        return lambda price: ladder_ranks(price, lo, bits, before)

    def search(price: np.ndarray) -> np.ndarray:
        lv = np.searchsorted(ladder, price).astype(np.int64)
        lv[lv >= n] = 0
        lv[ladder[lv] != price] = 0
        return lv
    return search


class EventStream:
    """The buffer of one pass over a market's chunks (see the module docstring).

    :param feed_ns: the engine's feed latency: ``local_ts = exch_ts + feed_ns`` where a source gave none.
    """

    def __init__(self, market: MarketData, ladder: np.ndarray, feed_ns: int = 0):
        self._chunks: Iterator[pd.DataFrame] = iter(market.chunks())
        self._ladder = ladder
        self._lookup = ladder_lookup(ladder)
        self._feed = int(feed_ns)
        self._rows = 0  # rows read so far (for error messages)
        self._last_ts = None
        self._next = self._read()
        if self._next is None:
            raise DataError("no market events to replay", key="events")
        self.events: Events = self._join(None, self._take())

    def _read(self) -> Events | None:
        """The next non-empty chunk as arrays (ts checked, lts adjusted, prices on the ladder), or None."""
        for chunk in self._chunks:
            if len(chunk) == 0:
                continue
            ts = np.ascontiguousarray(chunk["exch_ts"].to_numpy(np.int64))
            lts = np.ascontiguousarray(chunk["local_ts"].to_numpy(np.int64))
            back = 0 if self._last_ts is not None and ts[0] < self._last_ts else first_decrease(ts)
            if back >= 0:
                row = self._rows + back
                raise DataError(f"exch_ts goes backwards at row {row}", key="exch_ts")
            if self._feed:
                lts = np.where(lts == ts, ts + self._feed, lts)
            lv = self._lookup(chunk["price"].to_numpy(np.int64))
            self._rows += ts.size
            self._last_ts = int(ts[-1])
            return (ts, lts, np.ascontiguousarray(chunk["ev"].to_numpy(np.int8)),
                    np.ascontiguousarray(chunk["side"].to_numpy(np.int8)), lv,
                    np.ascontiguousarray(chunk["qty"].to_numpy(np.float64)))
        return None

    def _take(self) -> Events:
        chunk, self._next = self._next, self._read()
        return chunk

    @staticmethod
    def _join(rest: Events | None, chunk: Events) -> Events:
        cols = chunk if rest is None else tuple(np.concatenate([a, b]) for a, b in zip(rest, chunk))
        lts = cols[1]
        perm = np.arange(lts.size) if first_decrease(lts) < 0 else np.argsort(lts, kind="stable")
        out = (*cols, perm)
        for a in out:
            a.flags.writeable = False
        return out

    def cover(self, until: int, safe: int, consumer: Consumer) -> bool:
        """Read chunks until the buffer holds every event with ``exch_ts <= until``; before each, let the
        consumer catch up to ``min(safe, chunk start - 1)``.  True when the buffer changed."""
        changed = False
        while self._next is not None and self._next[0][0] <= until:
            consumer.catch_up(min(safe, int(self._next[0][0]) - 1))
            ev, lev = consumer.pointers()
            ts, lts, kind, side, lv, qty, perm = self.events
            n = ts.size
            j = min(ev, int(perm[lev:].min()) if lev < n else n)  # everything before j: processed by both
            rest = None if j >= n else tuple(a[j:] for a in (ts, lts, kind, side, lv, qty))
            self.events = self._join(rest, self._take())
            consumer.rebase(self.events, ev - j, lev - j)
            changed = True
        return changed


__all__ = ["Consumer", "EventStream", "ladder_lookup", "market_ladder"]
