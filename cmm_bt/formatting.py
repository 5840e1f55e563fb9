"""Number formatting shared by the terminal report and ``compare``: money, signs, sparklines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rich.text import Text

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class MetricRow:
    """How one metric is shown: label, format kind, and which direction is better."""

    key: str
    label: str
    kind: Literal["money", "int", "float", "ratio", "pct", "ticks", "us", "rate"]
    better: Literal["higher", "lower", "none"] = "none"
    signed: bool = False  # colour green / red by sign


#: Key metrics in display order (summary table and comparison).
KEY_METRICS: tuple[MetricRow, ...] = (
    MetricRow("total_pnl", "PnL", "money", "higher", True),
    MetricRow("epnl", "EPnL (per episode)", "money", "higher", True),
    MetricRow("map", "MAP (mean |position|)", "float", "lower"),
    MetricRow("pnl_map", "PnLMAP", "float", "higher", True),
    MetricRow("sharpe", "Sharpe (episodes)", "ratio", "higher", True),
    MetricRow("sortino", "Sortino (episodes)", "ratio", "higher", True),
    MetricRow("max_drawdown", "Max drawdown", "money", "lower"),
    MetricRow("fills", "Fills", "int"),
    MetricRow("fills_per_quoted_hour", "Fills per quoted hour", "float", "none"),
    MetricRow("order_fill_ratio", "Orders filled / submitted", "pct", "none"),
    MetricRow("markout_1s", "Markout 1 s (ticks)", "ticks", "higher", True),
    MetricRow("markout_10s", "Markout 10 s (ticks)", "ticks", "higher", True),
    MetricRow("markout_60s", "Markout 60 s (ticks)", "ticks", "higher", True),
    MetricRow("pnl_spread_capture", "PnL: spread capture", "money", "higher", True),
    MetricRow("pnl_inventory", "PnL: inventory moves", "money", "higher", True),
    MetricRow("pnl_taker", "PnL: taker fills (crossing, flattening)", "money", "higher", True),
    MetricRow("pnl_fees", "PnL: fees", "money", "higher", True),
    MetricRow("quote_time_bid", "Time quoted, bid", "pct", "none"),
    MetricRow("quote_time_ask", "Time quoted, ask", "pct", "none"),
    MetricRow("turnover", "Turnover", "money"),
    MetricRow("fees", "Fees", "money", "lower"),
    MetricRow("events_per_s", "Events / s", "rate", "higher"),
    MetricRow("decision_latency_us_p50", "Decision latency p50 (µs)", "us", "lower"),
    MetricRow("decision_latency_us_p99", "Decision latency p99 (µs)", "us", "lower"),
)


def is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def fmt_money(v: float | None, currency: str = "") -> str:
    """``-1,234.50 USD``; below one cent three significant digits (``-0.000331 BTC``: coin-margined PnL);
    ``—`` for missing values."""
    if is_missing(v):
        return "—"
    x = float(v)
    s = f"{x:,.2f}" if x == 0 or abs(x) >= 0.005 else f"{x:.3g}"
    return f"{s} {currency}" if currency else s


def fmt_value(v: object, kind: str, currency: str = "") -> str:
    """Format one metric value by its kind (see :class:`MetricRow`)."""
    if is_missing(v):
        return "—"
    x = float(v)  # type: ignore[arg-type]
    if kind == "money":
        return fmt_money(x, currency)
    if kind == "int":
        return f"{int(round(x)):,}"
    if kind == "pct":
        return f"{100 * x:.1f} %"
    if kind == "ratio":
        return f"{x:.3f}"
    if kind == "ticks":
        return f"{x:+.3f}"
    if kind == "us":
        return f"{x:,.1f}"
    if kind == "rate":
        return f"{x:,.0f}"
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def signed_text(s: str, v: object) -> Text:
    """``s`` coloured green for a positive ``v``, red for negative, plain otherwise."""
    if is_missing(v) or float(v) == 0:  # type: ignore[arg-type]
        return Text(s)
    return Text(s, style="green" if float(v) > 0 else "red")  # type: ignore[arg-type]


def sparkline(values: np.ndarray, width: int) -> str:
    """Unicode block sparkline of ``values`` downsampled to at most ``width`` characters.

    Downsampling takes the last value of each of ``width`` equal buckets (an equity curve's level
    at the end of each bucket).  A flat or empty series gives a row of the lowest block.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    width = max(1, int(width))
    if v.size == 0:
        return ""
    if v.size > width:
        edges = np.linspace(0, v.size, width + 1).astype(int)
        v = v[np.maximum(edges[1:] - 1, 0)]
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 0:
        return SPARK_BLOCKS[0] * v.size
    idx = np.clip(((v - lo) / (hi - lo) * (len(SPARK_BLOCKS) - 1)).round().astype(int), 0, len(SPARK_BLOCKS) - 1)
    return "".join(SPARK_BLOCKS[i] for i in idx)
