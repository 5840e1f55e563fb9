"""Helpers shared by the data plugins (event assembly, instrument resolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cmm_bt.data.schema import EVENT_COLUMNS, TRADE, Instrument, MarketData, make_events, sort_events
from cmm_bt.errors import ConfigError, DataError


def datetime_ns(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Timestamps to int64 ns since the epoch (UTC): integers are taken as ns already; datetimes
    (naive = UTC) and ISO-8601 strings are converted."""
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(np.int64)
    dt = pd.to_datetime(s, utc=True)
    return dt.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().view(np.int64)


def trade_events(exch_ts: np.ndarray, local_ts: np.ndarray, side: np.ndarray, price: np.ndarray,
                 qty: np.ndarray) -> pd.DataFrame:
    """TRADE events (``side`` = aggressor, +1 buyer-initiated, -1 seller-initiated)."""
    n = len(exch_ts)
    return make_events(exch_ts=exch_ts, local_ts=local_ts, ev=np.full(n, TRADE, np.int8), side=side,
                       price=price, qty=qty)


def merge_events(*tables: pd.DataFrame) -> pd.DataFrame:
    """Concatenate event tables and stable-sort by ``exch_ts``.

    At equal ``exch_ts`` events keep the order of the arguments (pass trades before book events: a
    snapshot taken at the same instant as a trade already shows the trade's effect).
    """
    parts = [t for t in tables if len(t)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_COLUMNS.items()})
    ev = pd.concat(parts, ignore_index=True).astype(EVENT_COLUMNS)
    return sort_events(ev)


def span(events: pd.DataFrame, file: Path | str) -> tuple[int, int]:
    """First and last ``exch_ts``; no events at all is a :class:`DataError` naming ``file``."""
    if events.empty:
        raise DataError("no events after filtering (no usable rows)", file=file)
    ts = events["exch_ts"]
    return int(ts.iloc[0]), int(ts.iloc[-1])


def finish(events: pd.DataFrame, instrument: Instrument, sessions: list[tuple[int, int]], meta: dict,
           file: Path | str) -> MarketData:
    """Final schema checks and the :class:`MarketData`."""
    if events.empty:
        raise DataError("no events after filtering", file=file)
    lat = events["local_ts"].to_numpy() - events["exch_ts"].to_numpy()
    if (lat < 0).any():  # a plugin bug, not user data: plugins correct local clocks themselves
        raise AssertionError("local_ts earlier than exch_ts")
    meta.setdefault("events", int(len(events)))
    return MarketData(events=events, instrument=instrument, sessions=sessions, meta=meta)


def resolve_tick(instrument: Instrument | None, tick_size: float | None, default: float | None,
                 what: str) -> float:
    """Tick size: ``params.tick_size`` > manifest instrument > the plugin's default for the data."""
    if tick_size is not None:
        return float(tick_size)
    if instrument is not None:
        return float(instrument.tick_size)
    if default is not None:
        return float(default)
    raise ConfigError(f"cannot derive the tick size of {what}: give `instrument` in the manifest or "
                      "`tick_size` in params", key="instrument")


def split_on_gaps(ts: np.ndarray, gap_ns: int, start: int, end: int) -> list[tuple[int, int]]:
    """Sessions ``[(start, end), ...]`` separated where consecutive ``ts`` differ by more than
    ``gap_ns``: a session ends at the last timestamp before a gap and the next starts at the first
    after it; the first starts at ``start`` and the last ends at ``end``."""
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size < 2:
        return [(int(start), int(end))]
    cut = np.flatnonzero(np.diff(ts) > gap_ns)
    starts = [int(start)] + [int(ts[i + 1]) for i in cut]
    ends = [int(ts[i]) for i in cut] + [int(end)]
    return list(zip(starts, ends))
