"""Flat run metrics computed from a :class:`~cmm_bt.engine.output.BacktestOutput`.

Every key, its formula and unit is documented in ``docs/metrics.md``.  All computations are
vectorised (numpy); nothing here loops over steps or fills in Python.  The steps are read a chunk of
whole episodes at a time (:meth:`~cmm_bt.engine.output.BacktestOutput.step_chunks`), so a run whose
steps were written to a file is never held whole.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cmm_bt.engine.output import BacktestOutput

#: Horizons of the markout curve, metric key -> seconds.
MARKOUT_HORIZONS_S: dict[str, float] = {f"markout_{h}s": float(h) for h in (1, 2, 5, 10, 20, 30, 60)}

_NS = 1_000_000_000


def compute_metrics(
    out: BacktestOutput,
    *,
    wall_s: float,
    mid: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float | int]:
    """All run metrics as a flat ``{key: number}`` dict (see ``docs/metrics.md``).

    :param out: what the engine measured.
    :param wall_s: wall time the throughput metrics divide by (usually ``out.wall_s``), seconds.
    :param mid: optional exchange mid series ``(ts_ns, mid_ticks)``, ascending in time, used for
        markouts instead of the decision steps' mid (finer and not delayed by feed latency).
    """
    fills = out.fills
    counters = out.counters
    inst = out.instrument

    ep_pnl = episode_pnls(out)
    n_ep = int(ep_pnl.size)
    epnl = float(ep_pnl.mean()) if n_ep else math.nan
    scan = _StepScan(out)
    map_ = scan.abs_position / scan.n if scan.n else 0.0
    pnl_map = epnl / map_ if map_ > 0 else math.nan  # no position held: PnL per unit of it is undefined

    qty = fills["qty"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    price = fills["price"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    fees = float(fills["fee"].to_numpy(dtype=float).sum()) if len(fills) else 0.0

    submitted = int(counters.get("orders_submitted", 0))
    if "orders_filled" in counters:
        filled_orders = int(counters["orders_filled"])
    else:
        filled_orders = int(fills["order_id"].nunique()) if len(fills) else 0

    lat_ns = scan.latencies_ns
    events = int(counters.get("events", 0))
    decisions = scan.n

    metrics: dict[str, float | int] = {
        "epnl": epnl,
        "map": map_,
        "pnl_map": float(pnl_map),
        "sharpe": sharpe(ep_pnl),
        "sortino": sortino(ep_pnl),
        "max_drawdown": scan.max_drawdown,
        "total_pnl": float(ep_pnl.sum()),
        "fills": int(len(fills)),
        "order_fill_ratio": filled_orders / submitted if submitted > 0 else math.nan,
        "turnover": float(np.abs(inst.value(qty, price)).sum()) if qty.size else 0.0,
        "volume": float(qty.sum()),
        "fees": fees,
        "events": events,
        "wall_s": float(wall_s),
        "events_per_s": events / wall_s if wall_s > 0 else 0.0,
        "decisions": decisions,
        "decisions_per_s": decisions / wall_s if wall_s > 0 else 0.0,
        "decision_latency_us_p50": float(np.percentile(lat_ns, 50) / 1e3) if lat_ns.size else math.nan,
        "decision_latency_us_p99": float(np.percentile(lat_ns, 99) / 1e3) if lat_ns.size else math.nan,
        "episodes": n_ep,
        "orders_submitted": submitted,
        "orders_rejected": int(counters.get("orders_rejected", 0)),
        "orders_cancelled": int(counters.get("orders_cancelled", 0)),
    }
    metrics.update(markouts(out, MARKOUT_HORIZONS_S, mid=mid))
    metrics.update(pnl_attribution(out, float(ep_pnl.sum())))
    metrics.update(scan.quoting_time(len(fills)))
    return metrics


def pnl_attribution(out: BacktestOutput, total_pnl: float) -> dict[str, float]:
    """Where the PnL came from, money: ``total = spread capture + taker + inventory − fees``.

    Each fill's edge against the exchange mid just before it, ``side · (value(qty, mid_at_fill) −
    value(qty, price))`` (:meth:`~cmm_bt.data.schema.Instrument.value`; linear: ``side · (mid − price)
    · qty · tick_value``), summed over passive (maker) fills is ``pnl_spread_capture`` and over taker fills
    (crossing orders, end-of-episode flattening) ``pnl_taker``; ``pnl_fees`` is minus the fees paid;
    ``pnl_inventory`` is the rest: the mark-to-market moves of the inventory held.
    """
    f = out.fills
    if len(f) == 0:
        return {"pnl_spread_capture": 0.0, "pnl_taker": 0.0, "pnl_fees": 0.0, "pnl_inventory": total_pnl}
    qty, inst = f["qty"].to_numpy(float), out.instrument
    edge = f["side"].to_numpy(float) * inst.value_change(qty, f["price"].to_numpy(float), f["mid_at_fill"].to_numpy(float))
    edge = np.nan_to_num(edge)
    maker = f["maker"].to_numpy(bool)
    fees = float(f["fee"].to_numpy(float).sum())
    spread, taker = float(edge[maker].sum()), float(edge[~maker].sum())
    return {"pnl_spread_capture": spread, "pnl_taker": taker, "pnl_fees": 0.0 - fees, "pnl_inventory": total_pnl - spread - taker + fees}


def quoting_time(out: BacktestOutput, n_fills: int) -> dict[str, float]:
    """Share of decision steps with a bid / an ask quoted (``quote_time_bid/ask``) and fills per hour
    spent quoting (either side), which unlike filled / submitted orders does not fall when a policy
    re-quotes often."""
    return _StepScan(out).quoting_time(n_fills)


def _median_of_counts(counts: dict[int, int]) -> float:
    """``np.median`` of a sample given as value -> count (the middle value, or the mean of the two)."""
    values = sorted(counts)
    cum = np.cumsum([counts[v] for v in values])
    n = int(cum[-1])
    lo = values[int(np.searchsorted(cum, (n - 1) // 2, side="right"))]
    hi = values[int(np.searchsorted(cum, n // 2, side="right"))]
    return (lo + hi) / 2


class _StepScan:
    """What the metrics need of the steps, gathered in one pass over :meth:`BacktestOutput.step_chunks`:
    the step count, summed |position|, measured decision latencies, quoted steps per side, the
    intervals between steps and the maximum drawdown of the equity curve."""

    _COLUMNS = ["ts", "episode", "position", "equity", "bid_quote", "ask_quote", "decision_latency_ns"]

    def __init__(self, out: BacktestOutput):
        self.n, self.abs_position, self.max_drawdown = 0, 0.0, 0.0
        self.bid = self.ask = self.either = 0
        latencies: list[np.ndarray] = []
        gaps: dict[int, int] = {}  # interval between consecutive steps (ns) -> how often
        last_ts, peak = None, 0.0  # the curve starts at 0
        curve = _CurvePieces(out)
        for c in out.step_chunks(self._COLUMNS):
            self.n += len(c)
            self.abs_position += float(np.abs(c["position"].to_numpy(dtype=float)).sum())
            lat = c["decision_latency_ns"].to_numpy(dtype=float)
            latencies.append(lat[lat >= 0])  # NOT_MEASURED (-1): a compiled policy, not timed
            bid, ask = np.isfinite(c["bid_quote"].to_numpy(float)), np.isfinite(c["ask_quote"].to_numpy(float))
            self.bid, self.ask, self.either = self.bid + int(bid.sum()), self.ask + int(ask.sum()), self.either + int((bid | ask).sum())
            ts = c["ts"].to_numpy(np.int64)
            values, counts = np.unique(np.diff(ts) if last_ts is None else np.diff(ts, prepend=last_ts), return_counts=True)
            for v, n in zip(values.tolist(), counts.tolist()):
                gaps[v] = gaps.get(v, 0) + n
            last_ts = int(ts[-1])
            piece = curve.piece(c)
            running = np.maximum.accumulate(np.r_[peak, piece])
            self.max_drawdown = max(self.max_drawdown, float(np.max(running[1:] - piece)))
            peak = float(running[-1])
        self.latencies_ns = np.concatenate(latencies) if latencies else np.zeros(0)
        self._gaps = gaps

    def quoting_time(self, n_fills: int) -> dict[str, float]:
        if self.n < 2:
            return {"quote_time_bid": math.nan, "quote_time_ask": math.nan, "fills_per_quoted_hour": math.nan}
        dt = _median_of_counts(self._gaps) / _NS
        hours = float(self.either) * dt / 3600.0
        return {"quote_time_bid": self.bid / self.n, "quote_time_ask": self.ask / self.n,
                "fills_per_quoted_hour": n_fills / hours if hours > 0 else math.nan}


# ------------------------------------------------------------------------------------ pieces
def episode_pnls(out: BacktestOutput) -> np.ndarray:
    """PnL of each episode (money), in episode order, from ``out.episodes``."""
    eps = out.episodes
    if len(eps) == 0:
        return np.zeros(0)
    eps = eps.sort_values("episode", kind="stable") if "episode" in eps else eps
    return eps["pnl"].to_numpy(dtype=float)


def sharpe(pnl: np.ndarray) -> float:
    """``mean / std`` (sample std, ddof=1) of per-episode PnL; NaN (n/a) for < 2 episodes or zero std."""
    if pnl.size < 2:
        return math.nan
    sd = float(np.std(pnl, ddof=1))
    return float(pnl.mean() / sd) if sd > 0 else math.nan


def sortino(pnl: np.ndarray) -> float:
    """``mean / downside deviation`` of per-episode PnL, target 0.

    Downside deviation = ``sqrt(mean(min(pnl, 0)^2))`` over all episodes; NaN (n/a) for < 2
    episodes or when no episode lost money (zero downside deviation: the ratio is undefined).
    """
    if pnl.size < 2:
        return math.nan
    dd = float(np.sqrt(np.mean(np.minimum(pnl, 0.0) ** 2)))
    return float(pnl.mean() / dd) if dd > 0 else math.nan


def equity_curve(out: BacktestOutput) -> np.ndarray:
    """The run's equity curve (money): a leading 0, then every decision step, episodes chained.

    Each episode's ``steps.equity`` is re-based so the episode starts where the previous one
    ended: ``curve = offset_e + equity - base_e`` with ``base_e = equity[last step of e] - pnl_e``
    and ``offset_e`` the summed PnL of earlier episodes.  This gives the same curve whether the
    engine resets cash per episode or carries it over.  Without an episodes table (or for an
    episode missing from it) the equity column is used as is.
    """
    curve = _CurvePieces(out)
    return np.concatenate([np.zeros(1), *(curve.piece(c) for c in out.step_chunks(["episode", "equity"]))])


class _CurvePieces:
    """:func:`equity_curve` a chunk of whole episodes at a time (the offset carried between chunks)."""

    def __init__(self, out: BacktestOutput):
        eps = out.episodes
        self.pnl_of = ({} if len(eps) == 0 or "episode" not in eps else
                       dict(zip(eps["episode"].to_numpy().tolist(), eps["pnl"].to_numpy(dtype=float).tolist())))
        self.plain = len(eps) == 0 or "episode" not in eps
        self.offset = 0.0

    def piece(self, chunk: pd.DataFrame) -> np.ndarray:
        eq = chunk["equity"].to_numpy(dtype=float)
        if self.plain:
            return eq
        ep = chunk["episode"].to_numpy()
        # contiguous runs of one episode id, in step order
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        ends = np.r_[starts[1:], ep.size]
        curve = np.empty(eq.size)
        offset = self.offset
        for s, e in zip(starts, ends):  # one iteration per episode, not per step
            pnl = self.pnl_of.get(ep[s].item())
            if pnl is None:
                curve[s:e] = eq[s:e]
                offset = eq[e - 1]
                continue
            base = eq[e - 1] - pnl
            curve[s:e] = offset + eq[s:e] - base
            offset += pnl
        self.offset = offset
        return curve


def max_drawdown(curve: np.ndarray) -> float:
    """Largest peak-to-trough fall of an equity curve, money, as a positive number (0.0 if none)."""
    if curve.size == 0:
        return 0.0
    peak = np.maximum.accumulate(curve)
    return float(np.max(peak - curve))


def markout(
    out: BacktestOutput,
    horizon_s: float,
    *,
    mid: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Qty-weighted mean signed markout in ticks per unit qty, ``horizon_s`` after each fill.

    Buy: ``mid(t + h) - price``; sell: ``price - mid(t + h)`` (positive = good for us).
    ``mid(t)`` is the last mid at or before ``t`` (``searchsorted`` on the mid series).  With the
    steps' mid, fills whose ``t + h`` falls after their episode's last step are skipped (no
    markout across an episode boundary); with an explicit series, those after its end.  NaN when
    no fill qualifies.
    """
    return markouts(out, {"m": horizon_s}, mid=mid)["m"]


def markouts(
    out: BacktestOutput,
    horizons_s: dict[str, float],
    *,
    mid: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """:func:`markout` at every horizon (key -> seconds), the steps read once a chunk at a time."""
    fills = out.fills
    sums = {key: [0.0, 0.0] for key in horizons_s}  # sum of side * (mid - price) * qty, sum of qty
    if len(fills) == 0:
        return {key: math.nan for key in horizons_s}
    if mid is not None:
        mts = np.asarray(mid[0], dtype=np.int64)
        _markout_sums(fills, horizons_s, mts, np.asarray(mid[1], dtype=float),
                      np.full(len(fills), mts[-1] if mts.size else np.iinfo(np.int64).min, dtype=np.int64), sums)
    else:
        for c in out.step_chunks(["ts", "episode", "mid"]):
            # the fills of this chunk's episodes, each limited to its episode's last step
            last_ts = c.groupby("episode", sort=False)["ts"].max()
            ep_end = fills["episode"].map(last_ts).to_numpy(dtype=float)  # NaN: episode not in this chunk
            mine = np.isfinite(ep_end)
            if mine.any():
                _markout_sums(fills[mine], horizons_s, c["ts"].to_numpy(dtype=np.int64), c["mid"].to_numpy(dtype=float),
                              ep_end[mine], sums)
    return {key: (num / q if q > 0 else math.nan) for key, (num, q) in sums.items()}


def _markout_sums(fills: pd.DataFrame, horizons_s: dict[str, float], mts: np.ndarray, mpx: np.ndarray,
                  until: np.ndarray, sums: dict[str, list[float]]) -> None:
    """Add to ``sums`` the markouts of ``fills`` on the mid series ``(mts, mpx)``, skipping fills whose
    ``t + h`` is after ``until`` (per fill)."""
    ts = fills["ts"].to_numpy(dtype=np.int64)
    side_all, px_all, q_all = (fills[c].to_numpy(dtype=float) for c in ("side", "price", "qty"))
    for key, horizon in horizons_s.items():
        t = ts + int(round(horizon * _NS))
        idx = np.searchsorted(mts, t, side="right") - 1
        ok = (t <= until) & (idx >= 0)
        if not ok.any():
            continue
        m = mpx[idx[ok]]
        ok_m = np.isfinite(m)
        q = q_all[ok][ok_m]
        sums[key][0] += float(np.sum(side_all[ok][ok_m] * (m[ok_m] - px_all[ok][ok_m]) * q))
        sums[key][1] += float(q.sum())


def episode_table(out: BacktestOutput) -> pd.DataFrame:
    """``out.episodes`` sorted by episode (for reports); empty frame when there are none."""
    eps = out.episodes
    return eps.sort_values("episode", kind="stable").reset_index(drop=True) if "episode" in eps else eps
