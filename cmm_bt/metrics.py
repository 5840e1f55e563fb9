"""Flat run metrics computed from a :class:`~cmm_bt.engine.output.BacktestOutput`.

Every key, its formula and unit is documented in ``docs/metrics.md``.  All computations are
vectorised (numpy); nothing here loops over steps or fills in Python.
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
    steps, fills = out.steps, out.fills
    counters = out.counters
    inst = out.instrument

    ep_pnl = episode_pnls(out)
    n_ep = int(ep_pnl.size)
    epnl = float(ep_pnl.mean()) if n_ep else math.nan
    pos = steps["position"].to_numpy(dtype=float) if len(steps) else np.zeros(0)
    map_ = float(np.abs(pos).mean()) if pos.size else 0.0
    pnl_map = epnl / map_ if map_ > 0 else math.nan  # no position held: PnL per unit of it is undefined

    curve = equity_curve(out)
    qty = fills["qty"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    price = fills["price"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    fees = float(fills["fee"].to_numpy(dtype=float).sum()) if len(fills) else 0.0

    submitted = int(counters.get("orders_submitted", 0))
    if "orders_filled" in counters:
        filled_orders = int(counters["orders_filled"])
    else:
        filled_orders = int(fills["order_id"].nunique()) if len(fills) else 0

    lat_ns = steps["decision_latency_ns"].to_numpy(dtype=float) if len(steps) else np.zeros(0)
    lat_ns = lat_ns[lat_ns >= 0]  # NOT_MEASURED (-1): a compiled policy, not timed
    events = int(counters.get("events", 0))
    decisions = int(len(steps))

    metrics: dict[str, float | int] = {
        "epnl": epnl,
        "map": map_,
        "pnl_map": float(pnl_map),
        "sharpe": sharpe(ep_pnl),
        "sortino": sortino(ep_pnl),
        "max_drawdown": max_drawdown(curve),
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
    for key, horizon in MARKOUT_HORIZONS_S.items():
        metrics[key] = markout(out, horizon, mid=mid)
    metrics.update(pnl_attribution(out, float(ep_pnl.sum())))
    metrics.update(quoting_time(out, len(fills)))
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
    s = out.steps
    if len(s) < 2:
        return {"quote_time_bid": math.nan, "quote_time_ask": math.nan, "fills_per_quoted_hour": math.nan}
    bid, ask = np.isfinite(s["bid_quote"].to_numpy(float)), np.isfinite(s["ask_quote"].to_numpy(float))
    dt = float(np.median(np.diff(s["ts"].to_numpy(np.int64)))) / _NS
    hours = float((bid | ask).sum()) * dt / 3600.0
    return {"quote_time_bid": float(bid.mean()), "quote_time_ask": float(ask.mean()),
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
    steps = out.steps
    if len(steps) == 0:
        return np.zeros(1)
    eq = steps["equity"].to_numpy(dtype=float)
    ep = steps["episode"].to_numpy()
    eps = out.episodes
    if len(eps) == 0 or "episode" not in eps:
        return np.concatenate([[0.0], eq])
    pnl_of = dict(zip(eps["episode"].to_numpy().tolist(), eps["pnl"].to_numpy(dtype=float).tolist()))
    # contiguous runs of one episode id, in step order
    starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    ends = np.r_[starts[1:], ep.size]
    curve = np.empty(eq.size + 1)
    curve[0] = 0.0
    offset = 0.0
    for s, e in zip(starts, ends):  # one iteration per episode, not per step
        pnl = pnl_of.get(ep[s].item())
        if pnl is None:
            curve[s + 1 : e + 1] = eq[s:e]
            offset = eq[e - 1]
            continue
        base = eq[e - 1] - pnl
        curve[s + 1 : e + 1] = offset + eq[s:e] - base
        offset += pnl
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
    fills = out.fills
    if len(fills) == 0:
        return math.nan
    t = fills["ts"].to_numpy(dtype=np.int64) + int(round(horizon_s * _NS))
    if mid is not None:
        mts = np.asarray(mid[0], dtype=np.int64)
        mpx = np.asarray(mid[1], dtype=float)
        ok = t <= (mts[-1] if mts.size else np.iinfo(np.int64).min)
    else:
        steps = out.steps
        if len(steps) == 0:
            return math.nan
        mts = steps["ts"].to_numpy(dtype=np.int64)
        mpx = steps["mid"].to_numpy(dtype=float)
        last_ts = steps.groupby("episode", sort=False)["ts"].max()
        ep_end = fills["episode"].map(last_ts).to_numpy(dtype=float)  # NaN: episode without steps
        ok = t <= np.nan_to_num(ep_end, nan=-np.inf)
    idx = np.searchsorted(mts, t, side="right") - 1
    ok &= idx >= 0
    if not ok.any():
        return math.nan
    m = mpx[idx[ok]]
    ok_m = np.isfinite(m)
    side = fills["side"].to_numpy(dtype=float)[ok][ok_m]
    px = fills["price"].to_numpy(dtype=float)[ok][ok_m]
    q = fills["qty"].to_numpy(dtype=float)[ok][ok_m]
    if q.sum() <= 0:
        return math.nan
    return float(np.sum(side * (m[ok_m] - px) * q) / q.sum())


def episode_table(out: BacktestOutput) -> pd.DataFrame:
    """``out.episodes`` sorted by episode (for reports); empty frame when there are none."""
    eps = out.episodes
    return eps.sort_values("episode", kind="stable").reset_index(drop=True) if "episode" in eps else eps
