"""CME top-5 quote snapshots + trades (parquet), as in ``cme/*_{quotes,trades}.parquet``.

Quotes: ``transact_time`` (UTC, index or column; any datetime resolution), ``bid_price_0..K-1``,
``offer_price_0..K-1``, ``bid_quantity_0..K-1``, ``offer_quantity_0..K-1``; a ``market`` index
level or column is ignored.  Trades: ``transact_time``, ``side``, ``price``, ``quantity``
(``market_trade_id`` ignored).  ``side`` is the resting side that was hit: ``B`` (bid) =
seller-initiated (-1), ``O`` (offer) = buyer-initiated (+1).  Which file is which is told by its
columns; the trades file is optional.

* ``local_ts = exch_ts + feed_latency_us`` (the data has no receive time).
* Sessions split where the gap between consecutive *trades* exceeds ``session_gap_s``: CME keeps
  publishing (pre-open) quotes through the 21:00-22:00 UTC maintenance break, so the quotes show no
  gap, but trading stops.  Without trades, the gap between snapshots is used.
* Crossed snapshot rows are dropped and locked ones kept (see :mod:`cmm_bt.data.checks`).
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
from cmm_bt_plugins.data.common import (datetime_ns, finish, merge_events, resolve_tick, span, split_on_gaps,
                                        trade_events)

#: Contract facts by file-name product prefix (``gc_m3_...`` -> GC): tick, multiplier.
KNOWN_PRODUCTS: dict[str, tuple[float, float]] = {"gc": (0.1, 100.0), "6b": (0.0001, 62500.0)}
TRADE_SIDES = {"B": -1, "O": 1}


def _read(path: Path) -> pd.DataFrame:
    checks.require_file(path)
    with checks.reading(path, "parquet"):
        df = pd.read_parquet(path)
    return df.reset_index()


class CmeParquet(DataSource):
    """CME quote snapshots and trades from parquet files."""

    name: ClassVar[str] = "cme"

    class Config(Params):
        tick_size: float | None = Field(None, gt=0, description="Tick size in price units; default: the "
                                        "manifest instrument, else known products (GC 0.1, 6B 0.0001).")
        feed_latency_us: float = Field(0.0, ge=0, description="Assumed feed latency: local_ts = exch_ts + this (us).")
        session_gap_s: float = Field(600.0, gt=0, description="A gap between trades longer than this (s) "
                                     "separates two sessions (the 21:00-22:00 UTC maintenance break).")

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> MarketData:
        quotes_path = trades_path = None
        quotes = trades = None
        for f in files:
            df = _read(Path(f))
            if "bid_price_0" in df.columns:
                quotes_path, quotes = Path(f), df
            elif "side" in df.columns or "quantity" in df.columns:
                trades_path, trades = Path(f), df
            else:
                checks.require_columns(df.columns, ["transact_time", "bid_price_0", "offer_price_0",
                                                    "bid_quantity_0", "offer_quantity_0"], f)
        if quotes is None:
            raise DataError("no quotes file (with bid_price_0, offer_price_0 ...) among the files",
                            file=files[0] if files else None, key="files")

        product = re.match(r"([a-z0-9]+?)_([a-z]\d)", quotes_path.name.lower())
        known = KNOWN_PRODUCTS.get(product.group(1)) if product else None
        tick = resolve_tick(instrument, self.config.tick_size, known[0] if known else None, str(quotes_path))
        if instrument is None:
            symbol = (product.group(1) + product.group(2)).upper() if product else quotes_path.stem
            instrument = Instrument(symbol=symbol, tick_size=tick, multiplier=known[1] if known else 1.0,
                                    currency="USD")
        meta: dict = {"source": self.name, "files": [str(f) for f in files]}
        lat_ns = int(round(self.config.feed_latency_us * 1000))

        # ---- quotes
        k = sum(1 for c in quotes.columns if re.fullmatch(r"bid_price_\d+", str(c)))
        cols = {s: [f"{s}_{i}" for i in range(k)] for s in ("bid_price", "offer_price", "bid_quantity", "offer_quantity")}
        checks.require_columns(quotes.columns, ["transact_time"] + sum(cols.values(), []), quotes_path)
        with checks.reading(quotes_path, "parquet"):
            ts = datetime_ns(quotes["transact_time"])
        checks.check_monotonic(ts, quotes_path, "transact_time")
        if quotes.empty:
            raise DataError("no data rows in the quotes file", file=quotes_path)
        levels = {}
        for pk, qk in (("bid_price", "bid_quantity"), ("offer_price", "offer_quantity")):
            px = checks.numeric(quotes, cols[pk], quotes_path).reshape(len(quotes), k)
            qty = checks.numeric(quotes, cols[qk], quotes_path).reshape(len(quotes), k)
            checks.check_positive(px, quotes_path, pk, allow_empty=True, columns=cols[pk])
            checks.check_quantity(qty, quotes_path, qk, present=px > 0, columns=cols[qk])
            levels[pk] = (checks.to_ticks(px, tick, file=quotes_path, key=pk, columns=cols[pk]),
                          np.where(px > 0, qty, 0.0))
        (bp, bq), (ap, aq) = levels["bid_price"], levels["offer_price"]
        keep = checks.drop_crossed(bp[:, 0], ap[:, 0], quotes_path, meta)
        book = snapshots_to_events(ts[keep], ts[keep] + lat_ns, bp[keep], bq[keep], ap[keep], aq[keep])
        meta["snapshots"] = int(keep.sum())

        # ---- trades
        tr = trades_events = None
        if trades is not None:
            checks.require_columns(trades.columns, ["transact_time", "side", "price", "quantity"], trades_path)
            with checks.reading(trades_path, "parquet"):
                tts = datetime_ns(trades["transact_time"])
            checks.check_monotonic(tts, trades_path, "transact_time")
            px = checks.numeric(trades, ["price"], trades_path)
            checks.check_positive(px, trades_path, "price")
            qty = checks.numeric(trades, ["quantity"], trades_path)
            checks.check_quantity(qty, trades_path, "quantity", positive=True)
            side = checks.map_codes(trades["side"], TRADE_SIDES, trades_path, "side", "trade side", "B or O")
            trades_events = trade_events(tts, tts + lat_ns, side,
                                         checks.to_ticks(px, tick, file=trades_path, key="price"), qty)
            tr = tts
            meta["trades"] = int(len(tts))

        events = merge_events(*(t for t in (trades_events, book) if t is not None))
        start, end = span(events, quotes_path)
        gap_ts = tr if tr is not None and len(tr) > 1 else ts[keep]
        sessions = split_on_gaps(gap_ts, int(self.config.session_gap_s * 1e9), start, end)
        return finish(events, instrument, sessions, meta, quotes_path)
