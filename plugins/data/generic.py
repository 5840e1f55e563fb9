"""The generic snapshot format for users' own data (documented in ``docs/data-formats.md``).

Snapshot files (parquet, or CSV / CSV.gz): ``ts`` (int ns since the epoch, or an ISO-8601
string; naive = UTC), ``bid_price_1..K``, ``bid_qty_1..K``, ``ask_price_1..K``, ``ask_qty_1..K``
(level 1 = best; empty levels NaN or 0), optional ``local_ts``.  Trade files: ``ts``, ``price``,
``qty``, ``side`` (aggressor: ``1``/``B``/``BUY`` buyer-initiated, ``-1``/``S``/``SELL``
seller-initiated), optional ``local_ts``.  A file is recognised by its columns; several snapshot
files are read in order, each starting a fresh book.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cmm_bt.components import DataSource, Params
from cmm_bt.data import checks
from cmm_bt.data.schema import Instrument, MarketData
from cmm_bt.data.snapshots import snapshots_to_events
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.common import (datetime_ns, finish, merge_events, resolve_tick, span, split_on_gaps,
                                        trade_events)

SIDES = {"1": 1, "+1": 1, "1.0": 1, "B": 1, "BUY": 1, "-1": -1, "-1.0": -1, "S": -1, "SELL": -1}


def read_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV(.gz) file as a DataFrame (errors as one-line DataError)."""
    checks.require_file(path)
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        with checks.reading(path, "parquet"):
            df = pd.read_parquet(path)
        return df if "ts" in df.columns else df.reset_index()
    if re.search(r"\.csv(\.gz|\.bz2|\.zip|\.xz)?$", name):
        with checks.reading(path, "CSV"):
            return pd.read_csv(path)
    raise DataError("unsupported file type (expected .parquet, .csv or .csv.gz)", file=path)


def _times(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    try:
        return datetime_ns(df[col])
    except (ValueError, TypeError) as err:
        parsed = pd.to_datetime(df[col], utc=True, errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        row = int(bad[0]) if bad.size else 0
        raise DataError(f"unparseable timestamp at row {row}", file=path, key=col) from err


class GenericSnapshots(DataSource):
    """Top-K snapshots (+ optional trades) in a simple documented column layout."""

    name: ClassVar[str] = "generic"

    class Config(Params):
        tick_size: float | None = Field(None, gt=0, description="Tick size; default: the manifest instrument "
                                        "(one of the two is required).")
        symbol: str | None = Field(None, description="Symbol when the manifest has no instrument; default: the "
                                   "first file's name.")
        feed_latency_us: float = Field(0.0, ge=0, description="local_ts = ts + this (us) when there is no local_ts column.")
        session_gap_s: float | None = Field(None, gt=0, description="Split sessions where consecutive snapshots are "
                                            "further apart than this (s); default: one session.")

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> MarketData:
        if not files:
            raise DataError("no files given", key="files")
        tick = resolve_tick(instrument, self.config.tick_size, None, str(files[0]))
        if instrument is None:
            instrument = Instrument(symbol=self.config.symbol or Path(files[0]).name.split(".")[0], tick_size=tick)
        meta: dict = {"source": self.name, "files": [str(f) for f in files], "snapshots": 0, "trades": 0}
        lat = int(round(self.config.feed_latency_us * 1000))
        books, trades, snap_ts = [], [], []
        for f in map(Path, files):
            df = read_table(f)
            if "bid_price_1" in df.columns or "ask_price_1" in df.columns:
                ev, ts = self._snapshots(df, f, tick, lat, meta)
                books.append(ev)
                snap_ts.append(ts)
            elif "price" in df.columns or "side" in df.columns:
                trades.append(self._trades(df, f, tick, lat, meta))
            else:
                checks.require_columns(df.columns, ["ts", "bid_price_1", "bid_qty_1", "ask_price_1", "ask_qty_1"], f)
        if not books:
            raise DataError("no snapshot file (with bid_price_1 ...) among the files", file=files[0], key="files")
        events = merge_events(*trades, *books)
        start, end = span(events, files[0])
        if self.config.session_gap_s:
            sessions = split_on_gaps(np.concatenate(snap_ts), int(self.config.session_gap_s * 1e9), start, end)
        else:
            sessions = [(start, end)]
        return finish(events, instrument, sessions, meta, files[0])

    def _snapshots(self, df: pd.DataFrame, f: Path, tick: float, lat: int, meta: dict):
        k = max((int(m.group(1)) for c in df.columns if (m := re.fullmatch(r"(?:bid|ask)_price_(\d+)", str(c)))),
                default=0)
        cols = {s: [f"{s}_{i}" for i in range(1, k + 1)] for s in ("bid_price", "bid_qty", "ask_price", "ask_qty")}
        checks.require_columns(df.columns, ["ts"] + sum(cols.values(), []), f)
        if df.empty:
            raise DataError("no data rows (the snapshot file has only a header)", file=f)
        ts = _times(df, "ts", f)
        checks.check_monotonic(ts, f, "ts")
        local = _times(df, "local_ts", f) if "local_ts" in df.columns else ts + lat
        levels = {}
        for side in ("bid", "ask"):
            pk, qk = f"{side}_price", f"{side}_qty"
            px = checks.numeric(df, cols[pk], f).reshape(len(df), k)
            qty = checks.numeric(df, cols[qk], f).reshape(len(df), k)
            checks.check_positive(px, f, pk, allow_empty=True, columns=cols[pk])
            checks.check_quantity(qty, f, qk, present=px > 0, columns=cols[qk])
            levels[side] = checks.to_ticks(px, tick, file=f, key=pk, columns=cols[pk]), np.where(px > 0, qty, 0.0)
        (bp, bq), (ap, aq) = levels["bid"], levels["ask"]
        keep = checks.drop_crossed(bp[:, 0], ap[:, 0], f, meta)
        if (local[keep] < ts[keep]).any():
            row = int(np.flatnonzero(keep & (local < ts))[0])
            raise DataError(f"local_ts earlier than ts at row {row}", file=f, key="local_ts")
        meta["snapshots"] += int(keep.sum())
        return snapshots_to_events(ts[keep], local[keep], bp[keep], bq[keep], ap[keep], aq[keep]), ts[keep]

    def _trades(self, df: pd.DataFrame, f: Path, tick: float, lat: int, meta: dict) -> pd.DataFrame:
        checks.require_columns(df.columns, ["ts", "price", "qty", "side"], f)
        ts = _times(df, "ts", f)
        checks.check_monotonic(ts, f, "ts")
        local = _times(df, "local_ts", f) if "local_ts" in df.columns else ts + lat
        px = checks.numeric(df, ["price"], f)
        checks.check_positive(px, f, "price")
        qty = checks.numeric(df, ["qty"], f)
        checks.check_quantity(qty, f, "qty", positive=True)
        side = checks.map_codes(df["side"], SIDES, f, "side", "side", "1/-1 or B/S")
        if (local < ts).any():
            raise DataError(f"local_ts earlier than ts at row {int(np.flatnonzero(local < ts)[0])}", file=f,
                            key="local_ts")
        if df.empty:
            warnings.warn(f"{f}: the trades file has no data rows", stacklevel=3)
        meta["trades"] += int(len(df))
        return trade_events(ts, local, side, checks.to_ticks(px, tick, file=f, key="price"), qty)
