"""Binance raw websocket captures (``<local receive ts> <json>`` lines, gzip), as written by
hftbacktest's collector: ``binance/{usdm,spot,cm}/*.gz``.

Lines and streams:

* combined-stream envelopes ``{"stream": ..., "data": ...}`` (bare event objects are accepted
  too): ``depthUpdate`` diffs (``depth@0ms`` futures with ``U/u/pu``, ``depth@100ms`` spot with
  ``U/u``) become BOOK events; ``trade`` becomes TRADE events; ``bookTicker`` is **ignored** (it
  repeats the best levels the depth diffs already carry, and mixing two unsynchronised feeds
  would corrupt the book); other streams (``aggTrade``...) are ignored and counted;
* a REST depth snapshot line (``lastUpdateId``, ``bids``, ``asks``; usually a few dozen lines
  into the first file of a capture) becomes CLEAR both sides plus its levels.

Ordering of the book: depth items are ordered by update id (a snapshot right after the diffs
with ``u <= lastUpdateId``).  Diffs with ``u <= lastUpdateId`` of the first snapshot are dropped
(already in it; counted in ``meta["depth_dropped_before_snapshot"]``), those with larger ``u``
are kept even when they arrived before the snapshot's REST response.  Without a snapshot the book
is built from the diffs alone (levels never updated are unknown) and a warning says so.
Sequence gaps (futures ``pu != previous u``, spot ``U != previous u + 1``) are counted in
``meta["depth_gaps"]``.

Timestamps:

* ``exch_ts``: the matching-engine transaction time ``T`` (ms) when the message has it (futures
  depth and all trades), else the event time ``E`` (spot depth, whose 100 ms batch has no ``T``).
  ``T`` is used rather than ``E`` because ``E`` is the push time of the message (up to several ms
  later, differently per stream), so ``T`` orders depth updates and the trades that caused them
  consistently.  A spot REST snapshot (no time) takes the time of the depth item before it.
  Depth times are made non-decreasing along the update-id order.
* ``local_ts``: the line prefix; unit detected per file from its magnitude (>= 1e17 ns,
  >= 1e14 us, else ms; the 2023 ``.dat.gz`` files are in us).  The capture machine's clock may
  run behind the exchange's (on the 2024 files by ~1.3 s): when any ``local_ts < exch_ts`` all
  local times are shifted by the same amount so the smallest feed latency is 0
  (``meta["local_clock_shift_ns"]``), as hftbacktest's ``correct_local_timestamp`` does.

Instrument: tick sizes by market and symbol (``KNOWN_TICKS``: usdm BTCUSDT 0.1, ETHUSDT 0.01,
spot BTCUSDT 0.01, COIN-M BTCUSD_PERP 0.1) unless the manifest or ``tick_size`` says otherwise.
COIN-M quantities are in contracts and the instrument is inverse (``contract="inverse"``:
``multiplier`` = contract value in USD, 100 for BTCUSD_PERP; PnL, fees and cash in the coin, BTC),
unless the manifest's instrument says otherwise (:func:`coin_m_instrument`).  Trade
aggressor from ``m`` (buyer is maker => seller-initiated, -1).
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from cmm_bt.components import DataSource, Params
from cmm_bt.data import checks
from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, Instrument, MarketData, make_events
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.common import finish, merge_events, resolve_tick, span, trade_events

try:  # orjson parses these captures ~3x faster; the stdlib is the fallback
    import orjson as _orjson

    _loads: Callable[[bytes], Any] = _orjson.loads
    JSON_LIBRARY = "orjson"
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    _loads = _json.loads
    JSON_LIBRARY = "json"

#: (market, symbol) -> tick size.
KNOWN_TICKS: dict[tuple[str, str], float] = {
    ("usdm", "BTCUSDT"): 0.1,
    ("usdm", "ETHUSDT"): 0.01,
    ("spot", "BTCUSDT"): 0.01,
    ("spot", "ETHUSDT"): 0.01,
    ("cm", "BTCUSD_PERP"): 0.1,
}
QUOTE_CURRENCY = {"usdm": "USDT", "spot": "USDT", "cm": "USD"}
#: COIN-M symbol -> contract value in USD (Binance: 100 USD for BTCUSD contracts, 10 USD for the others).
#: COIN-M contracts are inverse: PnL, fees and margin in the coin (the symbol's base asset).
KNOWN_CONTRACT_SIZES: dict[str, float] = {"BTCUSD_PERP": 100.0, "ETHUSD_PERP": 10.0}


def coin_m_instrument(symbol: str, tick: float, contract_size: float | None) -> Instrument:
    """The inverse instrument of a COIN-M ``symbol``: ``contract_size`` USD per contract (default: Binance's,
    100 USD for BTCUSD contracts and 10 USD for the others), PnL in the base coin, lots of one contract."""
    if contract_size is None:
        contract_size = KNOWN_CONTRACT_SIZES.get(symbol, 100.0 if symbol.startswith("BTCUSD") else 10.0)
    coin = symbol.split("USD")[0] or symbol
    return Instrument(symbol=symbol, tick_size=tick, multiplier=contract_size, lot_size=1.0, currency=coin,
                      contract="inverse")


def ts_unit_ns(first_ts: int) -> int:
    """Nanoseconds per unit of a local timestamp, from its magnitude (epoch times after 1973)."""
    if first_ts >= 10**17:
        return 1
    if first_ts >= 10**14:
        return 1_000
    if first_ts >= 10**11:
        return 1_000_000
    raise ValueError(f"timestamp {first_ts} is not an epoch time in ns, us or ms")


class _Acc:
    """Columnar accumulators filled while scanning the lines."""

    def __init__(self) -> None:
        # depth items (diffs and snapshots), one entry each
        self.d_local: list[int] = []
        self.d_exch: list[int] = []  # -1 = unknown (spot snapshot)
        self.d_first: list[int] = []  # U (snapshot: lastUpdateId)
        self.d_last: list[int] = []  # u (snapshot: lastUpdateId)
        self.d_prev: list[int] = []  # pu, -1 if absent
        self.d_snap: list[bool] = []
        self.d_line: list[int] = []
        self.d_file: list[int] = []
        self.d_nlev: list[int] = []
        # levels of depth items
        self.l_side: list[int] = []
        self.l_px: list[str] = []
        self.l_qty: list[str] = []
        # trades
        self.t_local: list[int] = []
        self.t_exch: list[int] = []
        self.t_px: list[str] = []
        self.t_qty: list[str] = []
        self.t_side: list[int] = []
        self.t_line: list[int] = []
        self.t_file: list[int] = []
        self.ignored: dict[str, int] = {}
        self.symbol: str | None = None
        self.market: str | None = None

    def levels(self, bids: list, asks: list) -> int:
        side, px, qty = self.l_side, self.l_px, self.l_qty
        for p, q in bids:
            px.append(p)
            qty.append(q)
        for p, q in asks:
            px.append(p)
            qty.append(q)
        side.extend([BID] * len(bids))
        side.extend([ASK] * len(asks))
        return len(bids) + len(asks)


def _scan(path: Path, fi: int, acc: _Acc) -> None:
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
    except FileNotFoundError as err:
        raise DataError("file not found", file=path) from err
    fh = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    unit = 0
    prev_local = -1
    lineno = 0
    try:
        with fh:
            for lineno, raw in enumerate(fh, 1):
                sp = raw.find(b" ")
                if sp <= 0:
                    if not raw.strip():
                        continue
                    raise DataError(f"line {lineno} is not '<timestamp> <json>'", file=path)
                try:
                    ts = int(raw[:sp])
                    if unit == 0:
                        unit = ts_unit_ns(ts)
                    msg = _loads(raw[sp + 1:])
                except (ValueError, TypeError) as err:
                    raise DataError(f"malformed line {lineno} ({checks.one_line(err)})", file=path) from err
                local = ts * unit
                if local < prev_local:
                    raise DataError(f"timestamps go backwards at line {lineno}", file=path, key="local_ts")
                prev_local = local
                try:
                    _dispatch(msg, local, lineno, fi, acc)
                except _NotAnObject as err:
                    raise DataError(f"unexpected message at line {lineno} ({err})", file=path) from err
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
                    raise DataError(f"unexpected message at line {lineno} ({checks.one_line(err)})",
                                    file=path) from err
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read gzip file at line {lineno + 1} ({checks.one_line(err)})", file=path) from err
    if lineno == 0:
        raise DataError("empty file", file=path)


class _NotAnObject(ValueError):
    """A capture line whose JSON (or whose envelope's ``data``) is not an object."""


def _dispatch(msg: dict, local: int, lineno: int, fi: int, acc: _Acc) -> None:
    if not isinstance(msg, dict):
        raise _NotAnObject(f"the JSON is a {type(msg).__name__}, not an object")
    if "data" in msg and "stream" in msg:
        stream = str(msg["stream"])
        data = msg["data"]
        if not isinstance(data, dict):
            raise _NotAnObject(f"the envelope's data is a {type(data).__name__}, not an object")
    else:
        stream = ""
        data = msg
    e = data.get("e")
    if e == "depthUpdate":
        if acc.symbol is None:
            acc.symbol = data.get("s")
            acc.market = "cm" if "ps" in data else ("usdm" if "pu" in data else "spot")
        acc.d_local.append(local)
        acc.d_exch.append(int(data.get("T") or data["E"]) * 1_000_000)
        acc.d_first.append(int(data["U"]))
        acc.d_last.append(int(data["u"]))
        acc.d_prev.append(int(data.get("pu", -1)))
        acc.d_snap.append(False)
        acc.d_line.append(lineno)
        acc.d_file.append(fi)
        acc.d_nlev.append(acc.levels(data["b"], data["a"]))
    elif e == "trade":
        acc.t_local.append(local)
        acc.t_exch.append(int(data.get("T") or data["E"]) * 1_000_000)
        acc.t_px.append(data["p"])
        acc.t_qty.append(data["q"])
        acc.t_side.append(-1 if data["m"] else 1)
        acc.t_line.append(lineno)
        acc.t_file.append(fi)
    elif "lastUpdateId" in data and "bids" in data:
        lid = int(data["lastUpdateId"])
        acc.d_local.append(local)
        t = data.get("T") or data.get("E")
        acc.d_exch.append(int(t) * 1_000_000 if t else -1)
        acc.d_first.append(lid)
        acc.d_last.append(lid)
        acc.d_prev.append(-1)
        acc.d_snap.append(True)
        acc.d_line.append(lineno)
        acc.d_file.append(fi)
        acc.d_nlev.append(acc.levels(data["bids"], data["asks"]))
    else:
        kind = e or ("bookTicker" if stream.endswith("bookTicker") or {"b", "a", "B", "A"} <= data.keys() else "other")
        acc.ignored[kind] = acc.ignored.get(kind, 0) + 1


def _floats(values: list[str], what: str, path: Path, lines: np.ndarray | None = None) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (ValueError, TypeError) as err:
        at = ""
        if lines is not None:  # find the first bad value (slow path, errors only); never echo it
            for j, v in enumerate(values):
                try:
                    float(v)
                except (ValueError, TypeError):
                    at = f" at line {lines[j]}"
                    break
        raise DataError(f"non-numeric {what}{at}", file=path, key=what) from err


def _ticks(px: np.ndarray, tick: float, lines: np.ndarray, files: np.ndarray, paths: list[Path]) -> np.ndarray:
    """Prices (already checked positive) to ticks; out of the int64-safe range is a DataError naming the
    file and line; off-grid prices are warned about or rejected (:func:`cmm_bt.data.checks.to_ticks`)."""
    with np.errstate(over="ignore", invalid="ignore"):
        big = ~(np.abs(px / tick) <= checks.MAX_TICKS)
    if big.any():
        j = int(np.flatnonzero(big)[0])
        raise DataError(f"price out of range at line {lines[j]} (more than 2**52 ticks of {tick:g}, or infinite)",
                        file=paths[int(files[j])], key="price")
    return checks.to_ticks(px, tick, file=paths[0] if len(paths) == 1 else ", ".join(p.name for p in paths),
                           key="price", rows=lines, unit="line")


class BinanceCapture(DataSource):
    """Binance websocket captures (depth diffs, trades, REST snapshot) for one symbol."""

    name: ClassVar[str] = "binance"

    class Config(Params):
        tick_size: float | None = Field(None, gt=0, description="Tick size; default: the manifest instrument, "
                                        "else KNOWN_TICKS by market and symbol.")
        market: Literal["auto", "usdm", "spot", "cm"] = Field("auto", description="Market of the capture; "
                                                              "auto: from the depth messages (pu => futures, ps => COIN-M).")
        contract_size: float | None = Field(None, gt=0, description="COIN-M (inverse) contract value in USD when the "
                                            "manifest has no instrument; default: KNOWN_CONTRACT_SIZES (BTCUSD 100, "
                                            "others 10).")

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> MarketData:
        if not files:
            raise DataError("no files given", key="files")
        paths = [Path(f) for f in files]
        acc = _Acc()
        for fi, p in enumerate(paths):
            _scan(p, fi, acc)
        market = acc.market if self.config.market == "auto" else self.config.market
        symbol = acc.symbol or "UNKNOWN"
        tick = resolve_tick(instrument, self.config.tick_size, KNOWN_TICKS.get((market or "", symbol)),
                            f"{market} {symbol}")
        if instrument is None and market == "cm":
            instrument = coin_m_instrument(symbol, tick, self.config.contract_size)
        elif instrument is None:
            instrument = Instrument(symbol=symbol, tick_size=tick, multiplier=1.0, lot_size=1.0,
                                    currency=QUOTE_CURRENCY.get(market or "", "USDT"))
        meta: dict = {"source": self.name, "files": [str(p) for p in paths], "market": market,
                      "symbol": symbol, "json_library": JSON_LIBRARY,
                      "ignored_messages": dict(sorted(acc.ignored.items()))}
        book = self._book(acc, paths, tick, meta)
        trades = self._trades(acc, paths, tick, meta)
        events = merge_events(trades, book)  # at equal exch_ts the depth update shows the trade
        # local clock correction: no event may be received before it happened
        lat = events["local_ts"].to_numpy() - events["exch_ts"].to_numpy()
        shift = int(max(0, -lat.min())) if len(lat) else 0
        if shift:
            events["local_ts"] = events["local_ts"].to_numpy() + shift
        meta["local_clock_shift_ns"] = shift
        lat = lat + shift
        if len(lat):
            meta["feed_latency_ms"] = {"p50": float(np.median(lat)) / 1e6, "p99": float(np.quantile(lat, 0.99)) / 1e6}
        start, end = span(events, paths[0])
        return finish(events, instrument, [(start, end)], meta, paths[0])

    # ------------------------------------------------------------------------------- the book
    def _book(self, acc: _Acc, paths: list[Path], tick: float, meta: dict) -> pd.DataFrame:
        n = len(acc.d_last)
        meta["depth_messages"] = int(n - sum(acc.d_snap))
        meta["snapshots"] = int(sum(acc.d_snap))
        meta["depth_gaps"] = 0
        if n == 0:
            return make_events(exch_ts=np.zeros(0, np.int64), ev=np.zeros(0), side=np.zeros(0),
                               price=np.zeros(0), qty=np.zeros(0))
        snap = np.array(acc.d_snap)
        first = np.array(acc.d_first, np.int64)
        last = np.array(acc.d_last, np.int64)
        prev = np.array(acc.d_prev, np.int64)
        exch = np.array(acc.d_exch, np.int64)
        local = np.array(acc.d_local, np.int64)
        nlev = np.array(acc.d_nlev, np.int64)
        line = np.array(acc.d_line, np.int64)
        fidx = np.array(acc.d_file, np.int64)

        # order by update id; a snapshot sorts after the diffs it already contains
        key = last * 2 + snap.astype(np.int64)
        keep = np.ones(n, bool)
        if snap.any():
            lid0 = last[snap].min()
            drop = ~snap & (last <= lid0)
            meta["depth_dropped_before_snapshot"] = int(drop.sum())
            keep &= ~drop
        else:
            warnings.warn(f"{paths[0]}: no REST depth snapshot in the capture; the book is built from "
                          "depth diffs only (levels never updated are missing)", stacklevel=3)
            meta["depth_dropped_before_snapshot"] = 0
        items = np.flatnonzero(keep)
        items = items[np.argsort(key[items], kind="stable")]

        # sequence gaps among consecutive diffs in update order (a snapshot resets the chain)
        s_items = snap[items]
        diffs_prev_last = np.r_[-1, last[items][:-1]]
        prev_is_item = np.r_[False, np.ones(len(items) - 1, bool)]
        market_has_pu = bool((prev[items][~s_items] >= 0).any())
        if market_has_pu:
            cont = prev[items] == diffs_prev_last
        else:
            cont = first[items] == diffs_prev_last + 1
        after_snap = np.r_[False, s_items[:-1]]
        # after a snapshot: the first diff must straddle lastUpdateId
        cont = np.where(after_snap, (first[items] <= diffs_prev_last + 1) & (last[items] > diffs_prev_last), cont)
        check = ~s_items & prev_is_item
        meta["depth_gaps"] = int((check & ~cont).sum())
        meta["depth_sequence"] = "pu" if market_has_pu else "U/u"

        # exchange times: fill unknown (spot snapshot) from the neighbours, then non-decreasing
        ex = exch[items].copy()
        known = ex >= 0
        if not known.any():
            ex = local[items].copy()
        else:
            ex[~known] = ex[known][0]  # leading unknowns take the first known time ...
            ex = np.maximum.accumulate(ex)  # ... others the time before them; then non-decreasing

        # levels: expand items to their levels
        offs = np.r_[0, np.cumsum(nlev)]
        counts = nlev[items]
        rep = np.repeat(np.arange(len(items)), counts)
        out_start = np.r_[0, np.cumsum(counts)[:-1]]
        lev_idx = (offs[items] - out_start)[rep] + np.arange(int(counts.sum()))
        side_all = np.array(acc.l_side, np.int8)
        lev_line, lev_file = np.repeat(line, nlev), np.repeat(fidx, nlev)  # of every level, in scan order
        px_all = _floats(acc.l_px, "price", paths[0], lev_line)
        qty_all = _floats(acc.l_qty, "qty", paths[0], lev_line)
        bad = ~(px_all > 0) | ~((qty_all >= 0) & (qty_all <= checks.MAX_QTY))  # every level, dropped ones included
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            it = int(np.searchsorted(offs, j, side="right") - 1)
            if not px_all[j] > 0:
                raise DataError(f"non-positive price at line {line[it]}", file=paths[fidx[it]], key="price")
            raise DataError(f"negative, missing or out-of-range qty at line {line[it]}", file=paths[fidx[it]],
                            key="qty")
        ticks_all = _ticks(px_all, tick, lev_line, lev_file, paths)

        # CLEAR rows for snapshots: two per snapshot item, placed before its levels
        snap_pos = np.flatnonzero(s_items)
        n_lev = len(lev_idx)
        # order key: (item position, 0 for clears / 1 for levels, level order)
        ts_l = np.r_[ex[rep], np.repeat(ex[snap_pos], 2)]
        loc_l = np.r_[local[items][rep], np.repeat(local[items][snap_pos], 2)]
        ev_l = np.r_[np.full(n_lev, BOOK, np.int8), np.full(2 * len(snap_pos), CLEAR, np.int8)]
        side_l = np.r_[side_all[lev_idx], np.tile(np.array([BID, ASK], np.int8), len(snap_pos))]
        price_l = np.r_[ticks_all[lev_idx], np.zeros(2 * len(snap_pos), np.int64)]
        qty_l = np.r_[qty_all[lev_idx], np.zeros(2 * len(snap_pos))]
        pos = np.r_[rep * 2 + 1, np.repeat(snap_pos * 2, 2)]
        order = np.argsort(pos, kind="stable")
        return make_events(exch_ts=ts_l[order], local_ts=loc_l[order], ev=ev_l[order], side=side_l[order],
                           price=price_l[order], qty=qty_l[order])

    # ----------------------------------------------------------------------------- the trades
    def _trades(self, acc: _Acc, paths: list[Path], tick: float, meta: dict) -> pd.DataFrame:
        t_line, t_file = np.array(acc.t_line, np.int64), np.array(acc.t_file, np.int64)
        px = _floats(acc.t_px, "price", paths[0], t_line)
        qty = _floats(acc.t_qty, "qty", paths[0], t_line)
        bad = ~(px > 0) | ~((qty > 0) & (qty <= checks.MAX_QTY))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            if not px[j] > 0:
                raise DataError(f"non-positive trade price at line {acc.t_line[j]}", file=paths[acc.t_file[j]],
                                key="price")
            raise DataError(f"non-positive or out-of-range trade qty at line {acc.t_line[j]}",
                            file=paths[acc.t_file[j]], key="qty")
        meta["trades"] = int(len(px))
        return trade_events(np.array(acc.t_exch, np.int64), np.array(acc.t_local, np.int64),
                            np.array(acc.t_side, np.int8), _ticks(px, tick, t_line, t_file, paths), qty)
