"""The decision loop: replay a market through the compiled exchange, asking a policy for quotes each step.

Per decision step Python does O(1) work: one kernel call that advances the exchange to the step
time, one policy call, one kernel call that turns the quotes into requests.  Market events never
cross into Python.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.data.schema import CLEAR, MarketData
from cmm_bt.engine import kernel as K
from cmm_bt.engine.book import first_two_sided, local_top_of_book, new_bests, price_grid
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.output import FILL_COLUMNS, STEP_COLUMNS, BacktestOutput
from cmm_bt.errors import DataError

EPISODE_COLUMNS = [
    "episode", "start_ns", "end_ns", "pnl", "fees", "fills", "volume", "mean_abs_position", "max_abs_position",
]


@dataclass
class _Prepared:
    """Event arrays in exchange order (kernel) and in local-time order (local view)."""

    ts: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    px: np.ndarray  # index into the dense book
    qty: np.ndarray
    l_ts: np.ndarray  # local-time order
    l_kind: np.ndarray
    l_side: np.ndarray
    l_px: np.ndarray
    l_qty: np.ndarray
    offset: int
    n: int


def _prepare(market: MarketData, config: EngineConfig) -> _Prepared:
    ev = market.events
    if len(ev) == 0:
        raise DataError("no market events to replay", key="events")
    ts = ev["exch_ts"].to_numpy(np.int64)
    lts = ev["local_ts"].to_numpy(np.int64)
    kind = ev["ev"].to_numpy(np.int8)
    side = ev["side"].to_numpy(np.int8)
    price = ev["price"].to_numpy(np.int64)
    qty = ev["qty"].to_numpy(np.float64)
    if ts.size > 1 and (np.diff(ts) < 0).any():
        row = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise DataError(f"exch_ts goes backwards at row {row}", key="exch_ts")
    feed = int(round(config.feed_latency_us * 1000))
    if feed:
        lts = np.where(lts == ts, ts + feed, lts)
    offset, n = price_grid(price, kind)
    px = np.where(kind == CLEAR, 0, price - offset)
    order = np.argsort(lts, kind="stable")
    return _Prepared(ts, kind, side, px, qty, lts[order], kind[order], side[order], px[order], qty[order], offset, n)


def _episodes(market: MarketData, config: EngineConfig, start_ns: int | None, end_ns: int | None) -> list[tuple[int, int]]:
    sessions = list(market.sessions) or [(market.start_ns, market.end_ns + 1)]
    lo = start_ns if start_ns is not None else -(2**62)
    hi = end_ns if end_ns is not None else 2**62
    out: list[tuple[int, int]] = []
    for s, e in sessions:
        s, e = max(int(s), lo), min(int(e), hi)
        if e <= s:
            continue
        if config.episode_mode == "fixed":
            length = int(round(config.episode_length_s * 1e9))
            for a in range(s, e, length):
                out.append((a, min(a + length, e)))
        else:
            out.append((s, e))
    return out


def _grid(prep: _Prepared, episodes: list[tuple[int, int]], dt: int):
    """Decision times, their episode ids and the (start, end, first step, end step) of kept episodes."""
    if not episodes:
        return np.empty(0, np.int64), np.empty(0, np.int32), []
    starts = np.array([s for s, _ in episodes], dtype=np.int64)
    ends = np.array([e for _, e in episodes], dtype=np.int64)
    first = first_two_sided(prep.l_ts, prep.l_kind, prep.l_side, prep.l_px, prep.l_qty, np.zeros((2, prep.n)),
                            new_bests(prep.n), starts, ends)
    times, ids, kept = [], [], []
    k = 0
    for (s, e), f in zip(episodes, first):
        if f < 0:
            continue
        t0 = s + -(-(int(f) - s) // dt) * dt
        t = np.arange(t0, e, dt, dtype=np.int64)
        if t.size == 0:
            continue
        times.append(t)
        ids.append(np.full(t.size, len(kept), dtype=np.int32))
        kept.append((s, e, k, k + t.size))
        k += t.size
    if not times:
        return np.empty(0, np.int64), np.empty(0, np.int32), []
    return np.concatenate(times), np.concatenate(ids), kept


def decision_grid(
    market: MarketData, config: EngineConfig, start_ns: int | None = None, end_ns: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Local decision times (ns, ascending) and episode ids of a replay, exactly as :func:`run_backtest`
    uses them: every ``decision_interval_ms`` of each episode, from the first grid time at which the
    local book is two-sided.  Model plugins compute their signals on this grid."""
    prep = _prepare(market, config)
    times, ids, _ = _grid(prep, _episodes(market, config, start_ns, end_ns), config.decision_interval_ns)
    return times, ids


def _fill_dict(f_i: np.ndarray, f_f: np.ndarray, k: int, resp: int) -> dict[str, Any]:
    return {
        "ts": int(f_i[k, K.FI_TS]),
        "local_ts": int(f_i[k, K.FI_TS]) + resp,
        "order_id": int(f_i[k, K.FI_OID]),
        "side": int(f_i[k, K.FI_SIDE]),
        "price": int(f_i[k, K.FI_PX]),
        "qty": float(f_f[k, K.FF_QTY]),
        "fee": float(f_f[k, K.FF_FEE]),
        "maker": bool(f_i[k, K.FI_MAKER]),
        "episode": int(f_i[k, K.FI_EPISODE]),
        "mid_at_fill": float(f_f[k, K.FF_MID]),
    }


def run_backtest(
    market: MarketData,
    policy: ExecutionPolicy,
    config: EngineConfig,
    *,
    signals: pd.DataFrame | None = None,
    on_quote: Callable[[DecisionState, Quotes], None] | None = None,
    on_fill: Callable[[dict[str, Any]], None] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> BacktestOutput:
    """Replay ``market`` (optionally only ``[start_ns, end_ns)``) with ``policy`` quoting every decision step.

    :param signals: one row per decision step of :func:`decision_grid` (same arguments); each row is
        handed to the policy as ``DecisionState.signals`` (a dict of floats).
    :param on_quote: called as ``on_quote(state, quotes)`` after each policy call (timed with it).
    :param on_fill: called with a dict of ``FILL_COLUMNS`` for each fill once the agent learns of it.
    """
    wall0 = time.perf_counter()
    prep = _prepare(market, config)
    dt = config.decision_interval_ns
    times, ep_ids, kept = _grid(prep, _episodes(market, config, start_ns, end_ns), dt)
    nsteps = int(times.size)
    sig_cols: list[str] = []
    sig_vals = None
    if signals is not None:
        if len(signals) != nsteps:
            raise DataError(f"signals have {len(signals)} rows but the decision grid has {nsteps} steps", key="signals")
        sig_cols = [str(c) for c in signals.columns]
        try:
            sig_vals = signals.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"signals must be numeric ({exc})", key="signals") from None

    l_bb, l_ba, l_bq, l_aq, _two = local_top_of_book(
        prep.l_ts, prep.l_kind, prep.l_side, prep.l_px, prep.l_qty, np.zeros((2, prep.n)), new_bests(prep.n), times
    )
    off = prep.offset
    tv = market.instrument.tick_value
    ex = K.Exchange(prep.ts, prep.kind, prep.side, prep.px, prep.qty, offset=off, n=prep.n, tick_value=tv,
                    lot_size=market.instrument.lot_size, config=config)
    st, acct = ex.st, ex.acct
    resp = int(ex.iprm[K.I_RESP])

    pos_a = np.zeros(nsteps)
    cash_a = np.zeros(nsteps)
    bidq_a = np.full(nsteps, np.nan)
    askq_a = np.full(nsteps, np.nan)
    lat_a = np.zeros(nsteps, dtype=np.int64)
    bb_l = (l_bb + off).tolist()
    ba_l = (l_ba + off).tolist()
    bq_l = l_bq.tolist()
    aq_l = l_aq.tolist()
    t_l = times.tolist()
    NO = K.NO_PRICE
    perf = time.perf_counter_ns
    quote = policy.quote
    delivered = 0
    episodes_rows = []
    flatten = config.flatten_at_episode_end

    for ep, (s, e, k0, k1) in enumerate(kept):
        st[K.S_EPISODE] = ep
        ex.advance(t_l[k0])
        mid0 = ex.exchange_mid()
        eq0 = acct[K.A_CASH] + (acct[K.A_POS] * mid0 * tv if acct[K.A_POS] else 0.0)
        fees0, vol0, nfill0 = acct[K.A_FEES], acct[K.A_VOL], ex.n_fills
        span = float(e - s)
        for k in range(k0, k1):
            t = t_l[k]
            ex.advance(t)
            pos_a[k] = acct[K.A_POS]
            cash_a[k] = acct[K.A_CASH]
            if on_fill is not None:
                known = int(st[K.S_KNOWN])
                while delivered < known:
                    on_fill(_fill_dict(ex.f_i, ex.f_f, delivered, resp))
                    delivered += 1
            state = DecisionState(
                t, k, bb_l[k], ba_l[k], bq_l[k], aq_l[k], float(acct[K.A_LPOS]), (t - s) / span,
                dict(zip(sig_cols, sig_vals[k].tolist())) if sig_vals is not None else {},
            )
            c0 = perf()
            q = quote(state)
            if on_quote is not None:
                on_quote(state, q)
            lat_a[k] = perf() - c0
            bp, ap = q.bid_price, q.ask_price
            if bp is not None:
                bidq_a[k] = bp
            if ap is not None:
                askq_a[k] = ap
            ex.quote(t, NO if bp is None else int(bp) - off, float(q.bid_qty),
                     NO if ap is None else int(ap) - off, float(q.ask_qty))
        ex.advance(e - 1)
        if not ex.end_episode(e, flatten):
            raise DataError(f"cannot flatten episode {ep} at {e}: the exchange book is empty", key="events")
        mid1 = ex.exchange_mid()
        eq1 = acct[K.A_CASH] + (acct[K.A_POS] * mid1 * tv if acct[K.A_POS] else 0.0)
        ap_ = np.abs(pos_a[k0:k1])
        episodes_rows.append((ep, s, e, eq1 - eq0, acct[K.A_FEES] - fees0, ex.n_fills - nfill0,
                              acct[K.A_VOL] - vol0, float(ap_.mean()), float(max(ap_.max(), abs(acct[K.A_POS])))))
    if on_fill is not None:
        while delivered < ex.n_fills:
            on_fill(_fill_dict(ex.f_i, ex.f_f, delivered, resp))
            delivered += 1

    best_bid = l_bb + off
    best_ask = l_ba + off
    mid = 0.5 * (best_bid + best_ask)
    steps = pd.DataFrame({
        "ts": times, "episode": ep_ids, "best_bid": best_bid, "best_ask": best_ask, "mid": mid,
        "position": pos_a, "cash": cash_a, "equity": cash_a + pos_a * mid * tv,
        "bid_quote": bidq_a, "ask_quote": askq_a, "decision_latency_ns": lat_a,
    }).astype(STEP_COLUMNS)
    nf = ex.n_fills
    fi, ff = ex.f_i[:nf], ex.f_f[:nf]
    fills = pd.DataFrame({
        "ts": fi[:, K.FI_TS], "local_ts": fi[:, K.FI_TS] + resp, "order_id": fi[:, K.FI_OID],
        "side": fi[:, K.FI_SIDE], "price": fi[:, K.FI_PX], "qty": ff[:, K.FF_QTY], "fee": ff[:, K.FF_FEE],
        "maker": fi[:, K.FI_MAKER].astype(bool), "episode": fi[:, K.FI_EPISODE], "mid_at_fill": ff[:, K.FF_MID],
    }).astype(FILL_COLUMNS)
    episodes = pd.DataFrame(episodes_rows, columns=EPISODE_COLUMNS).astype(
        {"episode": "int32", "start_ns": "int64", "end_ns": "int64", "fills": "int64"}
    )
    counters = {
        "orders_submitted": int(st[K.S_SUB]),
        "orders_cancelled": int(st[K.S_CXL]),
        "orders_rejected": int(st[K.S_REJ]),
        "orders_filled": int(st[K.S_FILLED]),
        "events": int(st[K.S_EVENTS]),
        "orders_rejected_post_only": int(st[K.S_REJ_POST]),
        "orders_rejected_position_limit": int(st[K.S_REJ_LIMIT]),
        "orders_rejected_price_range": int(st[K.S_REJ_RANGE]),
        "taker_orders": int(st[K.S_TAKER_ORDERS]),
        "steps": nsteps,
    }
    return BacktestOutput(market.instrument, steps, fills, episodes, counters, time.perf_counter() - wall0)


__all__ = ["EPISODE_COLUMNS", "EngineConfig", "decision_grid", "run_backtest"]
