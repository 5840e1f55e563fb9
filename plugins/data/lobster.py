"""LOBSTER message + orderbook CSV pair (``<TICKER>_<YYYY-MM-DD>_<start>_<end>_{message,orderbook}_<K>.csv``).

Standard LOBSTER layout, no header.  Message file columns: ``time`` (seconds after midnight,
exchange local time, decimals to ns), ``type``, ``order_id``, ``size``, ``price``
(USD × 10000), ``direction`` (-1 sell limit order, +1 buy limit order).  Orderbook file: per
level ``ask_price, ask_size, bid_price, bid_size`` for K levels; row i is the book *after*
message i.  Empty levels carry dummy prices (±9999999999) with size 0.

* BOOK events: :func:`cmm_bt.data.snapshots.snapshots_to_events` over the orderbook rows (the
  time of row i is the time of message i).
* TRADE events: executions (type 4 visible, type 5 hidden).  The direction column is the resting
  order's side, so the aggressor is ``-direction`` (a buy limit order executed => seller-initiated).
* Time: the date in the file name plus ``time`` in ``timezone`` (default America/New_York,
  NASDAQ's), converted to UTC ns; ``local_ts = exch_ts + feed_latency_us``.
* Instrument default: the ticker, tick 0.01 USD, multiplier 1.
"""

from __future__ import annotations

import re
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
from cmm_bt_plugins.data.common import finish, merge_events, resolve_tick, span, trade_events

NAME_RE = re.compile(r"(?P<ticker>[A-Za-z0-9.]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_(?P<kind>message|orderbook)_(?P<k>\d+)")
MESSAGE_COLUMNS = ["time", "type", "order_id", "size", "price", "direction"]
PRICE_SCALE = 10_000.0


def _read_csv(path: Path, ncols: int | None) -> pd.DataFrame:
    checks.require_file(path)
    with checks.reading(path, "CSV"):
        df = pd.read_csv(path, header=None)
    if ncols is not None and df.shape[1] != ncols:
        raise DataError(f"expected {ncols} columns, found {df.shape[1]}", file=path, key="columns")
    return df


class LobsterCsv(DataSource):
    """LOBSTER message and orderbook files (one trading day of one ticker)."""

    name: ClassVar[str] = "lobster"

    class Config(Params):
        tick_size: float | None = Field(None, gt=0, description="Tick size in USD; default: the manifest "
                                        "instrument, else 0.01.")
        timezone: str = Field("America/New_York", description="Time zone of the message times (the exchange's).")
        feed_latency_us: float = Field(0.0, ge=0, description="Assumed feed latency: local_ts = exch_ts + this (us).")

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> MarketData:
        msg_path = book_path = None
        for f in map(Path, files):
            m = NAME_RE.search(f.name)
            if not m:
                raise DataError("file name is not <TICKER>_<DATE>_<start>_<end>_{message,orderbook}_<K>.csv",
                                file=f, key="files")
            if m.group("kind") == "message":
                msg_path, msg_m = f, m
            else:
                book_path, book_m = f, m
        if msg_path is None or book_path is None:
            raise DataError("need one message file and one orderbook file", file=files[0] if files else None,
                            key="files")
        k = int(book_m.group("k"))
        tick = resolve_tick(instrument, self.config.tick_size, 0.01, msg_path.name)
        if instrument is None:
            instrument = Instrument(symbol=msg_m.group("ticker"), tick_size=tick, multiplier=1.0, currency="USD")
        meta: dict = {"source": self.name, "files": [str(f) for f in files]}

        msg = _read_csv(msg_path, 6)
        msg.columns = MESSAGE_COLUMNS
        book = _read_csv(book_path, 4 * k)
        if len(book) != len(msg):
            raise DataError(f"orderbook has {len(book)} rows but the message file {len(msg)}", file=book_path,
                            key="rows")
        secs = pd.to_numeric(msg["time"], errors="coerce").to_numpy(np.float64)
        bad = ~(np.isfinite(secs) & (secs >= 0) & (secs < 7 * 86400))  # seconds after midnight
        if bad.any():
            raise DataError(f"non-numeric or out-of-range time at row {int(np.flatnonzero(bad)[0])}", file=msg_path,
                            key="time")
        checks.check_monotonic(secs, msg_path, "time")
        midnight = pd.Timestamp(msg_m.group("date")).tz_localize(self.config.timezone).tz_convert("UTC")
        ts = midnight.value + np.rint(secs * 1e9).astype(np.int64)
        lat = int(round(self.config.feed_latency_us * 1000))

        arr = checks.numeric(book, list(book.columns), book_path).reshape(len(book), 4 * k)
        ask_px, ask_sz, bid_px, bid_sz = (arr[:, j::4] for j in range(4))
        for px, sz, key in ((ask_px, ask_sz, "ask_price"), (bid_px, bid_sz, "bid_price")):
            checks.check_quantity(sz, book_path, key.replace("price", "size"))
            live = sz > 0
            checks.check_positive(np.where(live, px, 1.0), book_path, key)
        bp = checks.to_ticks(np.where(bid_sz > 0, bid_px / PRICE_SCALE, 0), tick, file=book_path, key="bid_price")
        ap = checks.to_ticks(np.where(ask_sz > 0, ask_px / PRICE_SCALE, 0), tick, file=book_path, key="ask_price")
        keep = checks.drop_crossed(bp[:, 0], ap[:, 0], book_path, meta)
        book_ev = snapshots_to_events(ts[keep], ts[keep] + lat, bp[keep], bid_sz[keep], ap[keep], ask_sz[keep])

        typ = msg["type"].to_numpy()
        ex = np.isin(typ, (4, 5))
        px = checks.numeric(msg, ["price"], msg_path)[ex]
        checks.check_positive(px, msg_path, "price", rows=np.flatnonzero(ex))
        size = checks.numeric(msg, ["size"], msg_path)[ex]
        checks.check_quantity(size, msg_path, "size", rows=np.flatnonzero(ex), positive=True)
        direction = msg["direction"].to_numpy()[ex]
        if not np.isin(direction, (-1, 1)).all():
            row = int(np.flatnonzero(ex)[np.flatnonzero(~np.isin(direction, (-1, 1)))[0]])
            raise DataError(f"direction must be -1 or 1 at row {row}", file=msg_path, key="direction")
        trades = trade_events(ts[ex], ts[ex] + lat, (-direction).astype(np.int8),
                              checks.to_ticks(px / PRICE_SCALE, tick, file=msg_path, key="price",
                                              rows=np.flatnonzero(ex)), size)
        meta.update(messages=int(len(msg)), trades=int(ex.sum()), hidden_trades=int((typ == 5).sum()))
        events = merge_events(trades, book_ev)
        start, end = span(events, msg_path)
        return finish(events, instrument, [(start, end)], meta, msg_path)
