"""The decision loop: replay a market through the compiled exchange, asking a policy for quotes each step.

Per decision step Python does O(1) work: one kernel call (send the previous step's quotes, advance the
exchange and the local view to the step time) and one policy call.  Market events never cross into
Python.  A policy with a compiled quoting function (``ExecutionPolicy.compiled``) and no hooks runs
whole episodes inside numba (:mod:`cmm_bt.engine.compiled`) with identical results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.data.schema import MarketData
from cmm_bt.engine import kernel as K
from cmm_bt.engine.book import PRICE_MARGIN, apply_local_until, first_two_sided, new_bests, two_sided_from
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.output import FILL_COLUMNS, NOT_MEASURED, BacktestOutput
from cmm_bt.engine.steps import StepColumns, StepFileWriter, episode_steps
from cmm_bt.engine.stream import EventStream, market_ladder
from cmm_bt.errors import ConfigError, DataError

EPISODE_COLUMNS = [
    "episode", "start_ns", "end_ns", "pnl", "fees", "fills", "volume", "mean_abs_position", "max_abs_position",
]
EPISODE_DTYPES = {"episode": "int32", "start_ns": "int64", "end_ns": "int64", "fills": "int64"}


@dataclass
class _Prepared:
    """Event arrays in exchange order (``ts, lts, kind, side, lv, qty``) plus ``perm``, their local-time
    order; the price ladder; the accepted quote range ``[lo, hi]`` in ticks."""

    events: tuple
    ladder: np.ndarray
    lo: int
    hi: int


def _prepare(market: MarketData, config: EngineConfig) -> _Prepared:
    """The whole market's events as one buffer of :class:`EventStream` (drivers that jump between
    episodes, :mod:`cmm_bt.engine.stepping`, hold every event)."""
    if len(market.events) == 0:
        raise DataError("no market events to replay", key="events")
    whole = MarketData(market.events, market.instrument, market.sessions)
    ladder, lo, hi = market_ladder(whole)
    return _Prepared(EventStream(whole, ladder, config.feed_latency_ns).events, ladder, lo - PRICE_MARGIN, hi + PRICE_MARGIN)


MAX_DECISIONS = 100_000_000
"""Most decision steps one replay may hold (its step table alone is ~100 bytes a step)."""
MAX_EPISODES = 1_000_000
"""Most episodes one replay may cut its sessions into."""


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
            if len(out) + -(-(e - s) // length) > MAX_EPISODES:
                raise ConfigError(f"{config.episode_length_s:g} s cuts this data into more than {MAX_EPISODES:,} "
                                  "episodes: use longer episodes", key="engine.episode_length_s")
            for a in range(s, e, length):
                out.append((a, min(a + length, e)))
        else:
            out.append((s, e))
    return out


def _grid(prep: _Prepared, episodes: list[tuple[int, int]], dt: int):
    """:func:`_grid_times` of a market prepared whole (:func:`_prepare`), with the steps' episode ids:
    ``(times, episode_ids, kept)``."""
    if episodes:
        starts = np.array([s for s, _ in episodes], dtype=np.int64)
        ends = np.array([e for _, e in episodes], dtype=np.int64)
        ts, lts, kind, side, lv, qty, perm = prep.events
        first = first_two_sided(lts, kind, side, lv, qty, perm, prep.ladder.shape[0], starts, ends)
    else:
        first = np.empty(0, np.int64)
    times, kept = _grid_times(episodes, first, dt)
    return times, _episode_ids(kept, times.size), kept


class _LocalScan:
    """The local book alone, read from an :class:`EventStream` (it places the decision grid)."""

    def __init__(self, events, n: int):
        self.events, self.book, self.bests, self.ptr = events, np.zeros((2, n)), new_bests(n), np.zeros(1, np.int64)

    def pointers(self) -> tuple[int, int]:
        return self.events[0].size, int(self.ptr[0])

    def catch_up(self, until: int) -> None:
        apply_local_until(*self.events[1:], self.book, self.bests, self.ptr, until)

    def rebase(self, events, exchange: int, local: int) -> None:
        self.events, self.ptr[0] = events, local

    def first_two_sided(self, start: int, end: int) -> int:
        return int(two_sided_from(*self.events[1:], self.book, self.bests, self.ptr, start, end))


def _first_times(market: MarketData, ladder: np.ndarray, feed_ns: int, episodes: list[tuple[int, int]]) -> np.ndarray:
    """For each episode, the first local time its book is two-sided (-1: never), a chunk at a time (kept by
    a market whose events cannot change: the decision grid of a run is placed once, not per pass)."""
    return market.derived(("first-two-sided", feed_ns, tuple(episodes)),
                          lambda: _scan_first_times(market, ladder, feed_ns, episodes))


def _scan_first_times(market: MarketData, ladder: np.ndarray, feed_ns: int, episodes: list[tuple[int, int]]) -> np.ndarray:
    if not episodes:
        return np.empty(0, np.int64)
    stream = EventStream(market, ladder, feed_ns)
    scan = _LocalScan(stream.events, ladder.shape[0])
    first = np.empty(len(episodes), np.int64)
    for j, (s, e) in enumerate(episodes):
        stream.cover(e, s, scan)
        first[j] = scan.first_two_sided(s, e)
    first.flags.writeable = False
    return first


def _grid_times(episodes: list[tuple[int, int]], first: np.ndarray, dt: int):
    """Decision times and the (start, end, first step, end step) of kept episodes, given each episode's
    first two-sided local time."""
    if not episodes:
        return np.empty(0, np.int64), []
    t0s = [s + -(-(int(f) - s) // dt) * dt for (s, _), f in zip(episodes, first)]
    total = sum(max(0, -(-(e - t0) // dt)) for (_, e), t0, f in zip(episodes, t0s, first) if f >= 0)
    if total > MAX_DECISIONS:
        raise ConfigError(f"{dt / 1e6:g} ms gives {total:,} decision steps over this data (at most "
                          f"{MAX_DECISIONS:,} in one replay): use a longer interval or a shorter split",
                          key="engine.decision_interval_ms")
    times = np.empty(total, np.int64)  # filled in place: no list to concatenate
    kept: list[tuple[int, int, int, int]] = []
    k = 0
    for (s, e), f, t0 in zip(episodes, first, t0s):
        n = max(0, -(-(e - t0) // dt))
        if f < 0 or n == 0:
            continue
        times[k : k + n] = np.arange(t0, t0 + n * dt, dt, dtype=np.int64)
        kept.append((s, e, k, k + n))
        k += n
    return times, kept


def _episode_ids(kept: list[tuple[int, int, int, int]], steps: int) -> np.ndarray:
    """Each decision step's episode id (its kept episode's position), ``int32 [steps]``."""
    ids = np.empty(steps, np.int32)
    for j, (_, _, k0, k1) in enumerate(kept):
        ids[k0:k1] = j
    return ids


def decision_grid(
    market: MarketData, config: EngineConfig, start_ns: int | None = None, end_ns: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Local decision times (ns, ascending) and episode ids of a replay, exactly as :func:`run_backtest`
    uses them: every ``decision_interval_ms`` of each episode, from the first grid time at which the
    local book is two-sided.  Model plugins compute their signals on this grid."""
    times, kept = _streamed_grid(market, config, market_ladder(market)[0], start_ns, end_ns)
    return times, _episode_ids(kept, times.size)


def _streamed_grid(market: MarketData, config: EngineConfig, ladder: np.ndarray, start_ns: int | None,
                   end_ns: int | None):
    episodes = _episodes(market, config, start_ns, end_ns)
    first = _first_times(market, ladder, config.feed_latency_ns, episodes)
    return _grid_times(episodes, first, config.decision_interval_ns)


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


def _python_steps(ex: K.Exchange, policy: ExecutionPolicy, hooks, k0: int, times: np.ndarray, s: int, span: float,
                  sig, lat: list, delivered: int) -> int:
    """Steps ``k0 .. k0 + len(times) - 1`` of one episode with the Python policy; one kernel call per step (send the
    previous step's quotes, advance to this one), recording step ``k`` in row ``k - k0`` of ``ex.rec``;
    each policy call's wall time is appended to ``lat``.  Returns the number of fills delivered to ``on_fill``."""
    on_quote, on_fill = hooks
    sig_cols, sig_vals = sig
    # per step: one kernel call with the state as one descriptor array (K.step_packed, called through its
    # compiled entry point), a fresh DecisionState (slots), the policy; the signal rows are turned into
    # Python floats per episode
    step, quote, perf, NO, OK, State = K.step_packed_entry(), policy.quote, time.perf_counter_ns, K.NO_PRICE, K.OK, DecisionState
    timed = lat.append
    desc = ex.desc
    st, resp = ex.st, int(ex.st[K.I_RESP])
    t_l = times.tolist()  # Python ints, an episode at a time
    rows = sig_vals[k0 : k0 + len(t_l)].tolist() if sig_vals is not None else None
    kq, tq, bp, bq, ap, aq = -1, 0, NO, 0.0, NO, 0.0
    for i, t in enumerate(t_l):
        code, bb, ba, bbq, baq, pos = step(desc, i, t, kq, tq, bp, bq, ap, aq)
        if code != OK:
            ex.check(code)
            code, bb, ba, bbq, baq, pos = ex.step(i, t)
            desc = ex.desc
        if on_fill is not None:
            known = int(st[K.S_KNOWN])
            while delivered < known:
                on_fill(_fill_dict(ex.f_i, ex.f_f, delivered, resp))
                delivered += 1
        state = State(t, k0 + i, bb, ba, bbq, baq, pos, (t - s) / span,
                      dict(zip(sig_cols, rows[i])) if rows is not None else {})
        c0 = perf()
        q = quote(state)
        if on_quote is not None:
            on_quote(state, q)
        timed(perf() - c0)
        kq, tq = i, t
        bp, bq, ap, aq = q.bid_price, q.bid_qty, q.ask_price, q.ask_qty  # converted by the entry point
        if bp is None:
            bp = NO
        if ap is None:
            ap = NO
    if kq >= 0:
        ex.quote(kq, tq, int(bp), float(bq), int(ap), float(aq))
    return delivered


def _compiled_steps(ex: K.Exchange, fn, params: np.ndarray, signals: np.ndarray, times: np.ndarray, s: int,
                    span: float) -> None:
    """One episode's steps (``times``, ``signals``: its rows) inside numba (:func:`cmm_bt.engine.compiled.run_steps`)."""
    from cmm_bt.engine.compiled import run_steps

    ex.st[K.S_STEP] = 0
    while ex.check(run_steps(fn, params, signals, times, s, span, times.size, *ex.args)):
        pass


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
    steps_to: Path | None = None,
) -> BacktestOutput:
    """Replay ``market`` (optionally only ``[start_ns, end_ns)``) with ``policy`` quoting every decision step.

    :param signals: one row per decision step of :func:`decision_grid` (same arguments); each row is
        handed to the policy as ``DecisionState.signals`` (a dict of floats).
    :param on_quote: called as ``on_quote(state, quotes)`` after each policy call (timed with it).
    :param on_fill: called with a dict of ``FILL_COLUMNS`` for each fill once the agent learns of it.
    :param steps_to: write the steps to this parquet file an episode at a time (the output reads them
        from there: :class:`~cmm_bt.engine.output.StepsFile`) instead of holding them in memory; the file
        is removed if the replay fails.
    """
    wall0 = time.perf_counter()
    ladder, lo, hi = market_ladder(market)
    times, kept = _streamed_grid(market, config, ladder, start_ns, end_ns)
    nsteps = int(times.size)
    sig_cols: list[str] = []
    sig_vals = None
    if signals is not None:
        if len(signals) != nsteps:
            raise DataError(f"signals have {len(signals)} rows but the decision grid has {nsteps} steps", key="signals")
        sig_cols = [str(c) for c in signals.columns]
        try:
            sig_vals = np.ascontiguousarray(signals.to_numpy(dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise DataError(f"signals must be numeric ({exc})", key="signals") from None
    fast = policy.compiled() if on_quote is None and on_fill is None else None
    if fast is not None:
        fn, params = fast
        params = np.array(params, dtype=np.float64)
        sig_arr = sig_vals if sig_vals is not None else np.zeros((nsteps, 0))
        sig_arr.flags.writeable = False

    stream = EventStream(market, ladder, config.feed_latency_ns)  # the market a chunk at a time
    # step records of one episode at a time (row k - k0 for step k), handed to the writer at its end
    longest = max((k1 - k0 for _, _, k0, k1 in kept), default=1)
    ex = K.Exchange(stream.events, ladder, lo=lo - PRICE_MARGIN, hi=hi + PRICE_MARGIN, instrument=market.instrument,
                    config=config, steps=longest)
    writer = StepFileWriter(steps_to) if steps_to is not None else StepColumns(nsteps)
    try:
        st, fl, rec = ex.st, ex.fl, ex.rec
        delivered = 0
        episodes_rows = []
        flatten = config.flatten_at_episode_end
        for ep, (s, e, k0, k1) in enumerate(kept):
            st[K.S_EPISODE] = ep
            n = k1 - k0
            rec[:n, K.R_BIDQUOTE :] = np.nan  # a side without a quote stays NaN (the kernel writes the rest)
            t0 = int(times[k0])
            stream.cover(e, t0, ex)  # every event up to the episode's end, earlier ones processed
            ex.advance(t0)
            eq0 = ex.equity()
            fees0, vol0, nfill0 = fl[K.A_FEES], fl[K.A_VOL], ex.n_fills
            if fast is not None:
                _compiled_steps(ex, fn, params, sig_arr[k0:k1], times[k0:k1], s, float(e - s))
                lat: Any = np.full(n, NOT_MEASURED, dtype=np.int64)
            else:
                lat = []
                delivered = _python_steps(ex, policy, (on_quote, on_fill), k0, times[k0:k1], s, float(e - s),
                                          (sig_cols, sig_vals), lat, delivered)
            ex.advance(e - 1)
            if not ex.end_episode(e, flatten):
                raise DataError(f"cannot flatten episode {ep} at {e}: the exchange book is empty", key="events")
            ap_ = np.abs(rec[:n, K.R_POS])
            episodes_rows.append((ep, s, e, ex.equity() - eq0, fl[K.A_FEES] - fees0, ex.n_fills - nfill0,
                                  fl[K.A_VOL] - vol0, float(ap_.mean()), float(max(ap_.max(), abs(fl[K.A_POS])))))
            writer.write(k0, episode_steps(rec[:n], times[k0:k1], ep, lat, market.instrument))
        if on_fill is not None:
            while delivered < ex.n_fills:
                on_fill(_fill_dict(ex.f_i, ex.f_f, delivered, int(st[K.I_RESP])))
                delivered += 1
        fills, counters = _fills_table(ex), _counters(st, nsteps)
        del ex, stream, rec  # the replay's event arrays (local times, order, ladder indices)
        steps = writer.close()
    except BaseException:
        if isinstance(writer, StepFileWriter):
            writer.abort()
        raise
    return BacktestOutput(market.instrument, steps, fills, _episodes_table(episodes_rows), counters,
                          time.perf_counter() - wall0)


def _table(columns: dict[str, np.ndarray], dtypes: dict[str, str]) -> pd.DataFrame:
    """A DataFrame of ``columns`` with ``dtypes`` (arrays already of that dtype are not copied)."""
    return pd.DataFrame({c: np.asarray(columns[c], dtype=d) for c, d in dtypes.items()}, copy=False)


def _episodes_table(rows: list[tuple]) -> pd.DataFrame:
    cols = list(zip(*rows)) if rows else [()] * len(EPISODE_COLUMNS)
    return _table(dict(zip(EPISODE_COLUMNS, cols)), {c: EPISODE_DTYPES.get(c, "float64") for c in EPISODE_COLUMNS})


def _fills_table(ex: K.Exchange) -> pd.DataFrame:
    nf = ex.n_fills
    fi, ff = ex.f_i[:nf], ex.f_f[:nf]
    return _table({
        "ts": fi[:, K.FI_TS], "local_ts": fi[:, K.FI_TS] + ex.st[K.I_RESP], "order_id": fi[:, K.FI_OID],
        "side": fi[:, K.FI_SIDE], "price": fi[:, K.FI_PX], "qty": ff[:, K.FF_QTY], "fee": ff[:, K.FF_FEE],
        "maker": fi[:, K.FI_MAKER], "episode": fi[:, K.FI_EPISODE], "mid_at_fill": ff[:, K.FF_MID],
    }, FILL_COLUMNS)


def _counters(st: np.ndarray, nsteps: int) -> dict[str, int]:
    return {
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


__all__ = ["EPISODE_COLUMNS", "EngineConfig", "decision_grid", "run_backtest"]
