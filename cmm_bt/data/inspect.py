"""Summary statistics of a :class:`~cmm_bt.data.schema.MarketData` and their rich rendering.

Book statistics are taken over the book states at the end of each distinct exchange timestamp
(one sample per update instant, after all its events), with both sides present.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt.data.schema import BOOK, CLEAR, TRADE, MarketData
from cmm_bt.data.topofbook import top_of_book

if TYPE_CHECKING:
    from rich.console import Console


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat().replace("+00:00", "Z")


def _dist(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "p95": float("nan")}
    return {"mean": float(np.mean(x)), "median": float(np.median(x)), "p95": float(np.quantile(x, 0.95))}


def inspect_market(md: MarketData, gap_s: float = 1.0) -> dict[str, Any]:
    """Span, event counts, spread (ticks) and depth at best, time gaps, crossed/locked counts, sessions."""
    ev = md.events
    ts = ev["exch_ts"].to_numpy(np.int64)
    kind = ev["ev"].to_numpy()
    out: dict[str, Any] = {
        "symbol": md.instrument.symbol,
        "tick_size": md.instrument.tick_size,
        "multiplier": md.instrument.multiplier,
        "events": int(len(ev)),
        "rows": {"book": int((kind == BOOK).sum()), "trade": int((kind == TRADE).sum()),
                 "clear": int((kind == CLEAR).sum())},
    }
    if len(ev) == 0:
        return out
    out.update(start=_iso(ts[0]), end=_iso(ts[-1]), span_s=float(ts[-1] - ts[0]) / 1e9)
    bb, ba, bq, aq = top_of_book(ev)
    end_of_ts = np.r_[ts[1:] != ts[:-1], True]
    both = end_of_ts & (bb >= 0) & (ba >= 0)
    spread = (ba - bb)[both]
    out["book_states"] = int(both.sum())
    out["spread_ticks"] = _dist(spread.astype(np.float64))
    out["replay_crossed_states"] = int((spread < 0).sum())
    out["replay_locked_states"] = int((spread == 0).sum())
    out["bid_qty_at_best"] = _dist(bq[both])
    out["ask_qty_at_best"] = _dist(aq[both])
    gaps = np.diff(ts) / 1e9
    big = gaps > gap_s
    out["gap_threshold_s"] = gap_s
    out["gaps"] = int(big.sum())
    if gaps.size:
        j = int(np.argmax(gaps))
        out["largest_gap_s"] = float(gaps[j])
        out["largest_gap_at"] = _iso(ts[j])
    trades = kind == TRADE
    if trades.any():
        q = ev["qty"].to_numpy()[trades]
        out["trade_volume"] = float(q.sum())
        out["buy_fraction"] = float((ev["side"].to_numpy()[trades] > 0).mean())
    lat = (ev["local_ts"].to_numpy(np.int64) - ts) / 1e6
    out["feed_latency_ms"] = _dist(lat)
    out["dropped_crossed_rows"] = int(md.meta.get("dropped_crossed_rows", 0))
    out["locked_rows"] = int(md.meta.get("locked_rows", 0))
    sessions = md.sessions or [(int(ts[0]), int(ts[-1]))]
    out["sessions"] = [{"start": _iso(s), "end": _iso(e), "hours": (e - s) / 3.6e12} for s, e in sessions]
    return out


def render_inspection(stats: dict[str, Any], console: "Console") -> None:
    """Print :func:`inspect_market` output as rich tables."""
    from rich.table import Table

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    t = Table(title=f"Market data: {stats.get('symbol', '?')}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for key in ("start", "end", "span_s", "tick_size", "multiplier", "events"):
        if key in stats:
            t.add_row(key, fmt(stats[key]))
    for k, v in stats.get("rows", {}).items():
        t.add_row(f"{k} events", fmt(v))
    for key in ("trade_volume", "buy_fraction", "book_states", "gaps", "largest_gap_s", "largest_gap_at",
                "dropped_crossed_rows", "locked_rows", "replay_crossed_states", "replay_locked_states"):
        if key in stats:
            label = f"gaps > {fmt(stats['gap_threshold_s'])} s" if key == "gaps" else key
            t.add_row(label, fmt(stats[key]))
    console.print(t)

    d = Table(title="Distributions")
    for c in ("quantity", "mean", "median", "p95"):
        d.add_column(c, justify="right" if c != "quantity" else "left")
    for key in ("spread_ticks", "bid_qty_at_best", "ask_qty_at_best", "feed_latency_ms"):
        if key in stats:
            s = stats[key]
            d.add_row(key, fmt(s["mean"]), fmt(s["median"]), fmt(s["p95"]))
    console.print(d)

    if stats.get("sessions"):
        s = Table(title="Sessions")
        for c in ("#", "start", "end", "hours"):
            s.add_column(c)
        for i, row in enumerate(stats["sessions"]):
            s.add_row(str(i), row["start"], row["end"], f"{row['hours']:.2f}")
        console.print(s)
