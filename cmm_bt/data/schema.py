"""The normalised, columnar market-data event schema shared by every data plugin and the engine.

Every data plugin turns its raw files into one :class:`MarketData`: a table of events sorted by
exchange timestamp, with prices as integer ticks, plus the instrument facts needed to turn ticks
and lots back into money.

Event columns (``EVENT_COLUMNS``):

=========== ======= ==========================================================================
column      dtype   meaning
=========== ======= ==========================================================================
exch_ts     int64   exchange timestamp, ns since the Unix epoch (UTC)
local_ts    int64   local receive timestamp, ns; ``exch_ts + feed latency`` when the source has
                    none (the plugin documents its rule); never earlier than ``exch_ts``
ev          int8    event kind: ``BOOK`` (set one price level), ``TRADE``, ``CLEAR`` (drop one
                    side of the book before a full snapshot)
side        int8    ``BID`` (+1) or ``ASK`` (-1) for BOOK and CLEAR; for TRADE the *aggressor*
                    side: +1 buyer-initiated (lifts the ask), -1 seller-initiated (hits the bid)
price       int64   price in ticks (``round(price / tick_size)``); 0 for CLEAR
qty         float64 BOOK: total resting quantity at that level after the event (0 deletes it);
                    TRADE: traded quantity; CLEAR: 0.  Quantities are in contracts / base units.
=========== ======= ==========================================================================

A snapshot source (CME, China futures, LOBSTER, generic) is turned into BOOK events by
:func:`cmm_bt.data.snapshots.snapshots_to_events` (diffs between consecutive snapshots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np
import pandas as pd

BOOK: int = 0
TRADE: int = 1
CLEAR: int = 2
BID: int = 1
ASK: int = -1

EVENT_COLUMNS: dict[str, str] = {
    "exch_ts": "int64",
    "local_ts": "int64",
    "ev": "int8",
    "side": "int8",
    "price": "int64",
    "qty": "float64",
}


@dataclass(frozen=True)
class Instrument:
    """What one tick and one unit of quantity are worth.

    ``contract="linear"`` (spot, USD-margined futures, most futures): ``qty`` units at ``price`` ticks
    are worth ``qty * price * tick_size * multiplier`` in ``currency``.

    ``contract="inverse"`` (coin-margined futures such as Binance COIN-M ``BTCUSD_PERP``): one
    contract is worth ``multiplier`` units of the quote currency (100 USD), and PnL, fees and cash are
    in the coin (``currency``, e.g. BTC); ``qty`` contracts at price ``P`` are worth
    ``multiplier * qty / P`` coins, so a long position of N contracts opened at ``P0`` and marked at
    ``P1`` gains ``N * multiplier * (1/P0 - 1/P1)`` coins (hftbacktest's ``InverseAsset``).

    :meth:`value` is the one formula the engine, the metrics and the reports use:
    ``cash -= side * value(qty, price) + fee`` per fill, ``equity = cash + value(position, mark)``,
    and a proportional fee is ``rate * |value(qty, price)|``.
    """

    symbol: str
    tick_size: float
    multiplier: float = 1.0
    lot_size: float = 1.0
    currency: str = "USD"
    contract: str = "linear"

    def __post_init__(self) -> None:
        if self.contract not in CONTRACTS:
            raise ValueError(f"contract must be one of {', '.join(CONTRACTS)}, not {self.contract!r}")

    @property
    def inverse(self) -> bool:
        return self.contract == "inverse"

    @property
    def value_scale(self) -> float:
        """The engine's constant: ``tick_size * multiplier`` (linear) or ``multiplier / tick_size`` (inverse)."""
        return self.multiplier / self.tick_size if self.inverse else self.tick_size * self.multiplier

    def value(self, qty, price_ticks):
        """Money value (in ``currency``) of ``qty`` units at ``price_ticks``: ``qty * price * tick_value``
        (linear) or ``-qty * multiplier / price`` (inverse: a long contract position is short the coin).
        Works on scalars and numpy arrays."""
        if self.inverse:
            return -qty * self.value_scale / price_ticks
        return qty * price_ticks * self.value_scale

    def value_change(self, qty, from_ticks, to_ticks):
        """``value(qty, to) - value(qty, from)``: what holding ``qty`` gains when the price moves (linear:
        ``qty * (to - from) * tick_size * multiplier``)."""
        if self.inverse:
            return qty * self.value_scale * (1.0 / from_ticks - 1.0 / to_ticks)
        return qty * (to_ticks - from_ticks) * self.value_scale

    def tick_value_at(self, price_ticks: float) -> float:
        """Money value of a one-tick move for one unit of quantity at ``price_ticks`` (constant for linear
        contracts; ``multiplier * tick_size / P**2`` for inverse ones)."""
        if self.inverse:
            return self.value_scale / float(price_ticks) ** 2
        return self.value_scale

    @property
    def tick_value(self) -> float:
        """Money value of one tick for one unit of quantity (linear contracts; an inverse contract's depends
        on the price: :meth:`tick_value_at`)."""
        if self.inverse:
            raise ValueError(f"{self.symbol} is an inverse contract: a tick's value depends on the price "
                             "(Instrument.tick_value_at)")
        return self.value_scale

    def describe(self) -> str:
        """One line for reports: what a tick / a contract is worth and what PnL is counted in."""
        if self.inverse:
            return (f"{self.symbol}, inverse: one contract = {self.multiplier:g} in the quote currency, tick "
                    f"{self.tick_size:g}, PnL and fees in {self.currency}")
        return (f"{self.symbol}, tick {self.tick_size:g} × {self.multiplier:g} = {self.tick_value:g} "
                f"{self.currency} per tick")


#: Contract types of :class:`Instrument`.
CONTRACTS = ("linear", "inverse")


@dataclass
class MarketData:
    """A normalised event stream for one instrument.

    :ivar events: DataFrame with exactly ``EVENT_COLUMNS``, sorted by ``exch_ts`` (stable).
    :ivar instrument: tick size, multiplier and lot size.
    :ivar sessions: ``(start_ns, end_ns)`` trading sessions, in time order; the engine can run one
        episode per session.  Empty means one session spanning the data.
    :ivar meta: free-form facts from the loader (source files, rows dropped and why, ...).
    """

    events: pd.DataFrame
    instrument: Instrument
    sessions: list[tuple[int, int]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def chunks(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """The events in exchange-time order, a chunk at a time: what a streamed replay reads
        (:mod:`cmm_bt.engine.stream`).  ``columns`` names the columns the reader needs (a market kept in
        the cache, :class:`cmm_bt.data.stored.StoredMarket`, reads only those, one row group at a
        time); here the one chunk is the whole table as it is (selecting columns would copy them)."""
        yield self.events

    def derived(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``: something derived from the events (the engine's price ladder, an episode's first
        two-sided time).  Computed anew each time here, since ``events`` may be changed in place; an
        immutable market (:class:`cmm_bt.data.stored.StoredMarket`) keeps it under ``key``."""
        return compute()

    def content_digest(self) -> str:
        """A hash of the events (what model stages key their caches on)."""
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        for col in self.events.columns:
            h.update(col.encode())
            h.update(np.ascontiguousarray(self.events[col].to_numpy()).tobytes())
        return h.hexdigest()

    @property
    def start_ns(self) -> int:
        return int(self.events["exch_ts"].iloc[0])

    @property
    def end_ns(self) -> int:
        return int(self.events["exch_ts"].iloc[-1])

    def between(self, start_ns: int, end_ns: int) -> "MarketData":
        """The events with ``start_ns <= exch_ts < end_ns`` and the sessions clipped to that span."""
        ts = self.events["exch_ts"].to_numpy()
        lo, hi = np.searchsorted(ts, [start_ns, end_ns], side="left")
        sessions = [(max(s, start_ns), min(e, end_ns)) for s, e in self.sessions if e > start_ns and s < end_ns]
        return MarketData(self.events.iloc[lo:hi].reset_index(drop=True), self.instrument, sessions, dict(self.meta))


def empty_events() -> pd.DataFrame:
    """An empty event table with the right dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_COLUMNS.items()})


def make_events(**columns: np.ndarray) -> pd.DataFrame:
    """Build an event table from arrays (missing ``local_ts`` defaults to ``exch_ts``), cast dtypes."""
    if "local_ts" not in columns:
        columns["local_ts"] = columns["exch_ts"]
    missing = set(EVENT_COLUMNS) - set(columns)
    if missing:
        raise ValueError(f"missing event columns: {sorted(missing)}")
    return pd.DataFrame({c: np.asarray(columns[c]).astype(t, copy=False) for c, t in EVENT_COLUMNS.items()})


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Stable sort by ``exch_ts`` (events with equal timestamps keep their source order)."""
    order = np.argsort(events["exch_ts"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True)
