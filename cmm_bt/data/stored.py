"""A market kept in the data cache, read a row group at a time: :class:`StoredMarket`.

:func:`cmm_bt.data.loading.load_market` writes each part of a dataset (:class:`cmm_bt.components.SourcePart`)
as one parquet file of row groups of at most :data:`ROW_GROUP_ROWS` events and returns the dataset as
a :class:`StoredMarket` over those files.  Nothing is read until asked: :meth:`StoredMarket.chunks`
(what the engine replays, :mod:`cmm_bt.engine.stream`) reads one row group at a time, so a replay
holds a row group and the events not yet processed, not the dataset; :attr:`StoredMarket.events`
reads every event of the market's span (what model stages and features use) and keeps it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from cmm_bt.data.schema import EVENT_COLUMNS, Instrument, MarketData

#: Events per row group of a cached part (~34 MiB of events in memory).
ROW_GROUP_ROWS = 1 << 20


@dataclass(frozen=True)
class StoredPart:
    """One cached parquet file: its checksum and, per row group, ``(rows, first exch_ts, last exch_ts)``."""

    path: Path
    sha256: str
    groups: tuple[tuple[int, int, int], ...]


def read_group(path: Path, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Row group ``i`` of a cached part as an event table (numpy columns of the event dtypes)."""
    import pyarrow.parquet as pq

    names = list(EVENT_COLUMNS if columns is None else columns)
    table = pq.ParquetFile(path, pre_buffer=False).read_row_group(i, columns=names, use_threads=False)
    return pd.DataFrame({c: np.asarray(table.column(c).to_numpy(), dtype=EVENT_COLUMNS[c]) for c in names}, copy=False)


class StoredMarket(MarketData):
    """The events of ``[lo, hi)`` (exchange time) of the cached ``parts``, read when asked."""

    def __init__(self, parts: list[StoredPart], instrument: Instrument, sessions: list[tuple[int, int]], meta: dict,
                 window: tuple[int, int] = (-(2**63), 2**63 - 1)):
        self.parts, self.instrument, self.sessions, self.meta = list(parts), instrument, list(sessions), meta
        self.window = window
        self._events: pd.DataFrame | None = None
        self._derived: dict = {}

    def derived(self, key, compute):
        """``compute()`` once per ``key``: the cached events never change (:meth:`MarketData.derived`)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def __repr__(self) -> str:
        rows = sum(r for p in self.parts for r, _, _ in p.groups)
        return f"StoredMarket({self.instrument.symbol}, {len(self.parts)} parts, {rows} events, window={self.window})"

    @property
    def events(self) -> pd.DataFrame:
        """Every event of the span, read once and kept."""
        if self._events is None:
            chunks = list(self.chunks())
            self._events = (pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else
                            chunks[0].reset_index(drop=True) if chunks else
                            pd.DataFrame({c: np.empty(0, t) for c, t in EVENT_COLUMNS.items()}))
        return self._events

    def chunks(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        if self._events is not None:
            yield from super().chunks(columns)
            return
        lo, hi = self.window
        for part in self.parts:
            for i, (_, first, last) in enumerate(part.groups):
                if last < lo or first >= hi:
                    continue
                group = read_group(part.path, i, None if columns is None else ["exch_ts", *columns])
                if first < lo or last >= hi:
                    a, b = np.searchsorted(group["exch_ts"].to_numpy(), [lo, hi], side="left")
                    group = group.iloc[a:b].reset_index(drop=True)
                if len(group):
                    yield group if columns is None else group[list(columns)]

    def _bound(self, which: int) -> int:
        lo, hi = self.window
        groups = [(p, i, g) for p in self.parts for i, g in enumerate(p.groups) if not (g[2] < lo or g[1] >= hi)]
        if not groups:
            raise IndexError("no events in this span")
        part, i, (_, first, last) = groups[which]
        if (which == 0 and first >= lo) or (which == -1 and last < hi):
            return int(first if which == 0 else last)
        ts = read_group(part.path, i)["exch_ts"].to_numpy()
        inside = ts[(ts >= lo) & (ts < hi)]
        return int(inside[which])

    @property
    def start_ns(self) -> int:
        return self._bound(0)

    @property
    def end_ns(self) -> int:
        return self._bound(-1)

    def between(self, start_ns: int, end_ns: int) -> "StoredMarket":
        lo, hi = max(self.window[0], start_ns), min(self.window[1], end_ns)
        sessions = [(max(s, start_ns), min(e, end_ns)) for s, e in self.sessions if e > start_ns and s < end_ns]
        return StoredMarket(self.parts, self.instrument, sessions, dict(self.meta), (lo, hi))

    def content_digest(self) -> str:
        """The parts' checksums and the span: the events' hash without reading them."""
        h = hashlib.blake2b(digest_size=16)
        for part in self.parts:
            h.update(part.sha256.encode())
        h.update(repr(self.window).encode())
        return h.hexdigest()


__all__ = ["ROW_GROUP_ROWS", "StoredMarket", "StoredPart", "read_group"]
