"""China futures level-1 snapshots from DataYes CSV files (``china/tick_*/<INSTR>_<DATE>.csv.gz``).

One file per instrument and trading day; several files (days) are loaded in order, each day
starting the book afresh (CLEAR), so a contract roll between days is safe.

Rules:

* **rows**: kept when ``bidPrice1 > 0`` and ``askPrice1 > 0`` (others are outside trading) and
  inside a continuous trading session (below); a row whose cumulative ``volume`` is below an
  earlier one of the same file (the trailing zero-volume row of some files) is dropped and counted
  in ``meta["dropped_volume_reset_rows"]``.  Only level 1 is used.
* **time**: ``dataDate dataTime.dataMillisec`` is Beijing time (UTC+8, no DST) -> UTC ns;
  ``local_ts = exch_ts + feed_latency_us``.
* **sessions** (Beijing time, per exchange in ``DAY_SESSIONS``; override with ``sessions``): CFFEX
  index futures 09:30-11:30, 13:00-15:00; CFFEX bond futures 09:15-11:30, 13:00-15:15; commodity
  exchanges 09:00-10:15, 10:30-11:30, 13:30-15:00, plus the previous evening's night session
  (rows dated before ``clearingDay`` between 21:00 and 02:30) when the file has one.  A snapshot up
  to ``session_grace_s`` after a session's end belongs to it (it carries the closing trades).
  Auction snapshots before the open are dropped.  ``MarketData.sessions`` has one entry per
  session with data: ``(session start, last snapshot in it)``.
* **trades** (inferred; the files carry no trade records): for each kept snapshot with
  ``dv = Δvolume > 0`` over the previous snapshot of the same file (auction snapshots included,
  so the first snapshot of a session does not re-count the auction), one TRADE of ``qty = dv``
  at the VWAP ``Δvalue / (dv × multiplier)`` rounded to the tick.  Aggressor side: VWAP above the
  previous snapshot's mid => buyer-initiated (+1), below => seller-initiated (-1); at the mid,
  compared with the current snapshot's mid; still tied, the previous trade's side (+1 for the
  first).  Ties are counted in ``meta["trade_side_ties"]``.  The trade is stamped with the
  snapshot time and ordered before the snapshot's book events.  Note: the exchanges' volume
  convention (single- or double-counted) passes through unchanged.
* **contract facts**: multiplier (``contMultNum``) and tick (``minChgPriceNum``) from the GBK
  contract metadata CSV: ``contract_file`` (relative to the data root) if given; else the
  manifest instrument; else ``contract_*/<instrumentID>.csv`` next to the tick folders (or under
  the data root), falling back to another contract of the same product (e.g. ``IF1704.csv`` for
  ``IF1705``, identical terms).
"""

from __future__ import annotations

import re
import warnings
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from cmm_bt.components import DataSource, Params, SourcePart
from cmm_bt.data import checks
from cmm_bt.data.manifest import check_under_root
from cmm_bt.data.schema import Instrument, MarketData
from cmm_bt.data.snapshots import snapshots_to_events
from cmm_bt.errors import ConfigError, DataError
from cmm_bt_plugins.data.common import finish, merge_events, trade_events

BEIJING_OFFSET_NS = 8 * 3600 * 10**9
_COMMODITY_DAY = ["09:00-10:15", "10:30-11:30", "13:30-15:00"]
#: Day sessions by exchange code (Beijing time); CFFEX bond futures listed by product.
DAY_SESSIONS: dict[str, list[str]] = {
    "CCFX": ["09:30-11:30", "13:00-15:00"],
    "CCFX:bond": ["09:15-11:30", "13:00-15:15"],
    "XDCE": _COMMODITY_DAY,
    "XZCE": _COMMODITY_DAY,
    "XSGE": _COMMODITY_DAY,
    "XINE": _COMMODITY_DAY,
}
CFFEX_BOND_PRODUCTS = {"T", "TF", "TS"}
NIGHT_WINDOW = ("21:00", "02:30")
REQUIRED = ["dataDate", "dataTime", "dataMillisec", "instrumentID", "exchangeCD", "volume", "value",
            "clearingDay", "bidPrice1", "bidVolume1", "askPrice1", "askVolume1"]


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _went_backwards(cum: np.ndarray, rows: np.ndarray, f, key: str, harm: str) -> np.ndarray:
    """Rows (of ``rows``) where the cumulative column ``cum`` is below an earlier row's value.  A trailing
    row or two (some files end on a zero row) is tolerated; more means one row's value is wrong."""
    vq = np.where(rows, cum, -np.inf)
    high = np.maximum.accumulate(vq)
    back = rows & (cum < high)
    n = int(back.sum())
    if n > max(10, 0.01 * int(rows.sum())):
        first = int(np.flatnonzero(back)[0])
        culprit = int(np.flatnonzero(vq[: first + 1] == high[first])[0])
        raise DataError(f"cumulative {key} at row {culprit} is above that of the {n} later rows (first at row "
                        f"{first}); it would {harm}", file=f, key=key)
    return back


def _product(instrument_id: str) -> str:
    m = re.match(r"[A-Za-z]+", instrument_id)
    return m.group(0) if m else instrument_id


def read_contract(path: Path) -> tuple[float, float]:
    """``(tick, multiplier)`` from a DataYes contract metadata CSV (GBK)."""
    checks.require_file(path)
    with checks.reading(path, "CSV"):
        df = pd.read_csv(path, encoding="gbk")
    checks.require_columns(df.columns, ["minChgPriceNum", "contMultNum"], path)
    tick, mult = float(df["minChgPriceNum"].iloc[0]), float(df["contMultNum"].iloc[0])
    if not (tick > 0 and mult > 0):
        raise DataError("non-positive tick or multiplier at row 0", file=path, key="minChgPriceNum")
    return tick, mult


def find_contract_file(instrument_id: str, tick_file: Path, data_root: Path) -> Path:
    """The metadata file of ``instrument_id`` (or of a contract of the same product)."""
    dirs = sorted(tick_file.parent.parent.glob("contract_*")) + sorted(data_root.glob("*/contract_*"))
    dirs += sorted(data_root.glob("contract_*"))
    for d in dirs:
        if (d / f"{instrument_id}.csv").is_file():
            return d / f"{instrument_id}.csv"
    prod = _product(instrument_id)
    for d in dirs:
        for f in sorted(d.glob(f"{prod}[0-9]*.csv")):
            if _product(f.stem) == prod:
                return f
    raise DataError(f"no contract metadata file for {instrument_id} (looked for contract_*/{instrument_id}.csv); "
                    "set params.contract_file or the manifest instrument", file=tick_file, key="instrumentID")


class ChinaDataYes(DataSource):
    """DataYes level-1 futures snapshots (CFFEX, DCE, CZCE, SHFE), one CSV(.gz) per day."""

    name: ClassVar[str] = "china-datayes"

    class Config(Params):
        contract_file: str | None = Field(None, description="Contract metadata CSV (GBK) relative to the data "
                                          "root; default: the manifest instrument, else found next to the data.")
        sessions: list[str] | None = Field(None, description="Day sessions 'HH:MM-HH:MM' in Beijing time; "
                                           "default: by exchange (DAY_SESSIONS).")
        night: bool = Field(True, description="Keep the previous evening's night session when a file has one.")
        session_grace_s: float = Field(1.0, ge=0, description="A snapshot this long after a session's end "
                                       "still belongs to it (s).")
        feed_latency_us: float = Field(0.0, ge=0, description="Assumed feed latency: local_ts = exch_ts + this (us).")

        @field_validator("sessions")
        @classmethod
        def _check_sessions(cls, v: list[str] | None) -> list[str] | None:
            for s in v or []:
                if not re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", s) or _minutes(s[:5]) >= _minutes(s[6:]):
                    raise ValueError(f"session {s!r} is not 'HH:MM-HH:MM' with start < end")
            return v

    def parts(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> list[SourcePart]:
        """One part per day file (each day starts its own book and its own cumulative volume), so adding a
        day normalises only that day.  Every part gets the instrument of the whole file list (a symbol
        ``IF1704+IF1705`` across a roll), which is part of its key."""
        if len(files) < 2:
            return super().parts(files, instrument, data_root)
        whole = instrument or self._instrument(files, data_root)
        return [SourcePart(f"{Path(f).name} as {whole!r}", (Path(f),), partial(self.load, [f], whole, data_root))
                for f in files]

    def _instrument(self, files: list[Path], data_root: Path) -> Instrument:
        """The instrument :meth:`load` derives for ``files`` (read from their first rows and contract files)."""
        ids = []
        for f in files:
            checks.require_file(Path(f))
            with checks.reading(Path(f), "CSV"):
                head = pd.read_csv(f, nrows=1, dtype={"instrumentID": str})
            checks.require_columns(head.columns, ["instrumentID"], Path(f))
            if head.empty:
                raise DataError("no rows", file=f)
            ids.append(str(head["instrumentID"].iloc[0]))
        if self.config.contract_file:
            check_under_root(self.config.contract_file, file=None, key="params.contract_file")
            terms = {read_contract(Path(data_root) / self.config.contract_file)}
        else:
            terms = {read_contract(find_contract_file(i, Path(f), Path(data_root))) for i, f in zip(ids, files)}
        if len(terms) > 1:
            raise DataError(f"contract terms (tick, multiplier) differ between the files: {sorted(terms)}",
                            file=files[0], key="instrumentID")
        (tick, mult), = terms
        return Instrument(symbol="+".join(dict.fromkeys(ids)), tick_size=tick, multiplier=mult, lot_size=1.0, currency="CNY")

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path) -> MarketData:
        if not files:
            raise DataError("no files given", key="files")
        meta: dict = {"source": self.name, "files": [str(f) for f in files], "instruments": [],
                      "dropped_volume_reset_rows": 0, "trade_side_ties": 0, "trades_skipped_bad_value": 0}
        fixed: tuple[float, float] | None = None
        if self.config.contract_file:
            check_under_root(self.config.contract_file, file=None, key="params.contract_file")
            cf = Path(data_root) / self.config.contract_file
            fixed = read_contract(cf)
            meta["contract_files"] = [str(cf)]
        elif instrument is not None:
            fixed = (instrument.tick_size, instrument.multiplier)
        books, trades, sessions = [], [], []
        prev_end = None
        ids: list[str] = []
        facts: tuple[float, float] | None = fixed
        for f in files:
            f = Path(f)
            df = self._read(f)
            iid = str(df["instrumentID"].iloc[0])
            ids.append(iid)
            if fixed is None:
                cf = find_contract_file(iid, f, Path(data_root))
                these = read_contract(cf)
                meta.setdefault("contract_files", [])
                if str(cf) not in meta["contract_files"]:
                    meta["contract_files"].append(str(cf))
                if facts is not None and these != facts:
                    raise DataError(f"contract terms differ from the previous file's (tick, multiplier) {facts} "
                                    f"vs {these}", file=f, key="instrumentID")
                facts = these
            tick, mult = facts
            b, t, s = self._day(df, f, tick, mult, meta)
            if prev_end is not None and len(b) and b["exch_ts"].iloc[0] < prev_end:
                raise DataError("file starts before the previous file ends (files must be in time order)", file=f,
                                key="dataDate")
            if len(b):
                prev_end = int(b["exch_ts"].iloc[-1])
            books.append(b)
            trades.append(t)
            sessions.extend(s)
        tick, mult = facts
        meta["instruments"] = ids
        if instrument is None:
            uniq = list(dict.fromkeys(ids))
            instrument = Instrument(symbol="+".join(uniq), tick_size=tick, multiplier=mult, lot_size=1.0, currency="CNY")
        parts = []
        for b, t in zip(books, trades):
            parts.extend([t, b])
        events = merge_events(*parts)
        meta["trades"] = int(sum(len(t) for t in trades))
        return finish(events, instrument, sessions, meta, files[0])

    # ----------------------------------------------------------------------------------- one file
    def _read(self, f: Path) -> pd.DataFrame:
        checks.require_file(f)
        with checks.reading(f, "CSV"):
            df = pd.read_csv(f, dtype={"dataDate": str, "dataTime": str, "clearingDay": str, "instrumentID": str,
                                       "exchangeCD": str})
        checks.require_columns(df.columns, REQUIRED, f)
        if df.empty:
            raise DataError("no rows", file=f)
        return df

    def _windows(self, exchange: str, product: str) -> list[str]:
        if self.config.sessions:
            return list(self.config.sessions)
        key = f"{exchange}:bond" if exchange == "CCFX" and product in CFFEX_BOND_PRODUCTS else exchange
        if key not in DAY_SESSIONS:
            raise ConfigError(f"unknown exchange {exchange!r}: give params.sessions", key="sessions")
        return DAY_SESSIONS[key]

    def _day(self, df: pd.DataFrame, f: Path, tick: float, mult: float, meta: dict):
        n = len(df)
        rows = np.arange(n)
        # --- timestamps (Beijing -> UTC)
        stamp = pd.to_datetime(df["dataDate"] + " " + df["dataTime"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
        ms = pd.to_numeric(df["dataMillisec"], errors="coerce")
        bad = stamp.isna().to_numpy() | ms.isna().to_numpy()
        if bad.any():
            raise DataError(f"unparseable time at row {int(np.flatnonzero(bad)[0])}", file=f, key="dataTime")
        local_ns = stamp.to_numpy().astype("datetime64[ns]").view(np.int64) + ms.to_numpy(np.int64) * 1_000_000
        exch = local_ns - BEIJING_OFFSET_NS
        bp = checks.numeric(df, ["bidPrice1"], f)
        ap = checks.numeric(df, ["askPrice1"], f)
        checks.check_positive(bp, f, "bidPrice1", allow_empty=True)
        checks.check_positive(ap, f, "askPrice1", allow_empty=True)
        bp_ticks = checks.to_ticks(bp, tick, file=f, key="bidPrice1")  # inf / 1e300 / off-grid: named errors
        ap_ticks = checks.to_ticks(ap, tick, file=f, key="askPrice1")
        quoted = (bp > 0) & (ap > 0)
        checks.check_monotonic(exch[quoted], f, "dataTime", rows=rows[quoted])
        bv = checks.numeric(df, ["bidVolume1"], f)
        av = checks.numeric(df, ["askVolume1"], f)
        checks.check_quantity(bv, f, "bidVolume1", present=bp > 0)
        checks.check_quantity(av, f, "askVolume1", present=ap > 0)
        vol = checks.numeric(df, ["volume"], f)
        val = checks.numeric(df, ["value"], f)
        checks.check_quantity(vol, f, "volume", present=quoted)  # cumulative lots: finite, >= 0, < 2**53
        bad = np.flatnonzero(quoted & ~(np.isfinite(val) & (val >= 0)))
        if bad.size:
            raise DataError(f"negative, missing or non-finite turnover at row {int(bad[0])}", file=f, key="value")
        # rows whose cumulative volume went backwards (e.g. a trailing zero-volume row)
        reset = _went_backwards(vol, quoted, f, "volume", "drop them all")
        meta["dropped_volume_reset_rows"] += int(reset.sum())
        base = quoted & ~reset
        _went_backwards(val, base, f, "value", "skip the trades of them all")  # cumulative turnover too
        idx = np.flatnonzero(base)

        # --- trades from cumulative volume/value, over all quoted rows (auctions included)
        dv = np.r_[np.nan, np.diff(vol[idx])]
        dval = np.r_[np.nan, np.diff(val[idx])]
        mid = 0.5 * (bp[idx] + ap[idx])
        prev_mid = np.r_[np.nan, mid[:-1]]
        has = dv > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = dval / (dv * mult)
        ok_val = has & np.isfinite(vwap) & (vwap > 0)
        meta["trades_skipped_bad_value"] += int((has & ~ok_val).sum())
        side = np.sign(vwap - prev_mid)
        side = np.where(side == 0, np.sign(vwap - mid), side)
        ties = ok_val & (side == 0)
        meta["trade_side_ties"] += int(ties.sum())
        carried = pd.Series(np.where(ok_val & ~ties, side, np.nan)).ffill().fillna(1.0).to_numpy()
        side = np.where(ties, carried, side)

        # --- sessions
        exchange = str(df["exchangeCD"].iloc[0])
        product = _product(str(df["instrumentID"].iloc[0]))
        windows = [(_minutes(w[:5]), _minutes(w[6:])) for w in self._windows(exchange, product)]
        tod = (local_ns % (86400 * 10**9))  # Beijing time of day, ns
        day_ns = local_ns - tod
        grace = int(self.config.session_grace_s * 1e9)
        clearing = pd.to_datetime(df["clearingDay"], format="%Y-%m-%d", errors="coerce").to_numpy()
        if pd.isna(clearing).any():
            raise DataError(f"unparseable clearingDay at row {int(np.flatnonzero(pd.isna(clearing))[0])}", file=f,
                            key="clearingDay")
        clearing_ns = clearing.astype("datetime64[ns]").view(np.int64)
        sess_id = np.full(n, -1, np.int64)
        m2ns = 60 * 10**9
        on_day = day_ns == clearing_ns
        for k, (a, b) in enumerate(windows):
            inw = on_day & (tod >= a * m2ns) & (tod <= b * m2ns + grace)
            sess_id[inw] = k
        if self.config.night:
            na, nb = _minutes(NIGHT_WINDOW[0]), _minutes(NIGHT_WINDOW[1])
            before = day_ns < clearing_ns
            night = before & ((tod >= na * m2ns) | (tod <= nb * m2ns + grace))
            sess_id[night] = len(windows)  # one night session per file
        keep_rows = base & (sess_id >= 0)
        in_sess = keep_rows[idx]

        # --- crossed / locked (in-session rows)
        sel = idx[in_sess]
        keep_sel = checks.drop_crossed(bp_ticks[sel], ap_ticks[sel], f, meta)
        final = sel[keep_sel]
        lat = int(round(self.config.feed_latency_us * 1000))
        book = snapshots_to_events(exch[final], exch[final] + lat, bp_ticks[final, None], bv[final, None],
                                   ap_ticks[final, None], av[final, None])
        # trades of the kept in-session rows (VWAPs are computed prices: no tick-grid check)
        t_mask = ok_val & in_sess
        t_mask[np.flatnonzero(in_sess)[~keep_sel]] = False
        ti = idx[t_mask]
        trades = trade_events(exch[ti], exch[ti] + lat, side[t_mask].astype(np.int8),
                              checks.to_ticks(vwap[t_mask], tick, file=f, key="value", rows=ti, on_grid=False,
                                              what="trade price (turnover / volume / multiplier)"),
                              dv[t_mask])
        # sessions with data: (window start, last snapshot)
        sessions = []
        sid_final = sess_id[final]
        for k in np.unique(sid_final):
            rows_k = final[sid_final == k]
            if k < len(windows):
                start = int(day_ns[rows_k[0]] + windows[k][0] * m2ns - BEIJING_OFFSET_NS)
            else:
                first_local = int(local_ns[rows_k[0]])
                start = first_local - int(tod[rows_k[0]]) + _minutes(NIGHT_WINDOW[0]) * m2ns - BEIJING_OFFSET_NS
                if tod[rows_k[0]] < _minutes(NIGHT_WINDOW[0]) * m2ns:  # first night row after midnight
                    start -= 86400 * 10**9
            sessions.append((min(start, int(exch[rows_k[0]])), int(exch[rows_k[-1]])))
        sessions.sort()
        if len(final) == 0:
            warnings.warn(f"{f}: no snapshot inside the trading sessions", stacklevel=3)
        return book, trades, sessions
