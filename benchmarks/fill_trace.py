"""Fill-by-fill differential trace of cmm-bt against hftbacktest 2.4 on a Binance capture.

    python benchmarks/fill_trace.py --data ../shared/datasets/binance/usdm/btcusdt_20240718.gz \\
        ../shared/datasets/binance/usdm/btcusdt_20240719.gz
    python benchmarks/fill_trace.py --data FILE --tick-size 0.01 --lot-size 0.001 --minutes 2

Both engines run the market maker of :mod:`cmm_bt.engine.hftbacktest_ref` (the models of
``benchmarks/engine_vs_hftbacktest.py``).  Every order of each engine is logged: submit time (local),
side, price, the queue ahead of it when it reached the exchange and when it ended (fill or cancel),
and how it ended.  Ours come from the kernel's order table (the loop below is ``run_backtest``'s
Python loop plus an ``advance`` to each order's arrival; the tool checks its fills are the engine's);
hftbacktest's from its order objects (``exch_timestamp``, ``exec_price_tick``, and the queue position
of its ``ProbQueueModel`` read through the order's ``q`` box: hftbacktest copies the exchange's order,
queue included, into every response, so the values are those at the acknowledgement and at the
final response, exact).

Fills are matched directly: same side, same price, fill times within one decision interval (orders
are paired, for the queue-at-arrival statistics, by side, price and submit times within half an interval).
Printed: the first matched fills, the first divergence (a fill in one engine whose twin order did not
fill, or filled elsewhere) with both orders' queues and both local books around it, the queue-at-arrival
difference over all twin orders, and a machine-readable last line::

    matched=<n> ours_only=<a> hbt_only=<b> first_divergence_ts=<exch ns of the first unmatched fill, or -1>
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cmm_bt.components import NO_PRICE
from cmm_bt.data.schema import Instrument, MarketData
from cmm_bt.engine import kernel as K
from cmm_bt.engine.hftbacktest_ref import (
    MMSpec,
    aligned_start,
    engine_config,
    hbt_asset,
    hbt_events_from_binance,
    quote_ticks,
)
from cmm_bt.engine.loop import _episodes, _grid, _prepare
from cmm_bt_plugins.data.binance import KNOWN_TICKS, BinanceCapture

#: Book levels printed on each side of the touch.
LEVELS = 5
#: Order log columns (both engines).
ORDER_COLUMNS = ["order_id", "side", "price", "submit_ts", "front_arrival", "status", "end_ts", "front_end",
                 "fill_ts", "fill_price"]
FILLED, CANCELLED, REJECTED, OPEN = "filled", "cancelled", "rejected", "open"
#: lot sizes of the dataset manifests (datasets/binance-*.yaml), as in ``engine_vs_hftbacktest.py``
LOTS = {("usdm", "BTCUSDT"): 0.001, ("usdm", "ETHUSDT"): 0.001, ("spot", "BTCUSDT"): 0.00001,
        ("cm", "BTCUSD_PERP"): 1.0}


def load_both(files: list[Path], tick_size: float | None, lot_size: float | None, cache_dir: str | None,
              minutes: float | None) -> tuple[MarketData, np.ndarray, Instrument]:
    """The capture for both engines, as ``engine_vs_hftbacktest.py`` loads it (ours: the ``binance``
    plugin; hftbacktest: :func:`hbt_events_from_binance`), both cut to exchange times before the first
    event + ``minutes`` when given."""
    src = BinanceCapture(BinanceCapture.Config())
    key = None
    if tick_size is None:
        probe = src.load(files, None, files[0].parent)
        key = (probe.meta["market"], probe.meta["symbol"])
        if key not in KNOWN_TICKS:
            raise SystemExit(f"error: no known tick size for {key}: pass --tick-size")
    tick = tick_size if tick_size is not None else KNOWN_TICKS[key]
    inst = Instrument(key[1] if key else files[0].name, tick, 1.0, lot_size or LOTS.get(key, 1.0), "USDT")
    market = src.load(files, inst, files[0].parent)
    data = hbt_events_from_binance(files, cache_dir)
    if minutes is not None:
        if minutes <= 0:
            raise SystemExit(f"error: --minutes must be > 0, got {minutes}")
        cut = market.start_ns + int(minutes * 60e9)
        market = market.between(market.start_ns, cut)
        data = data[data["exch_ts"] < cut]
    return market, data, inst


@dataclass
class Trace:
    """One engine's run: its orders (``ORDER_COLUMNS``), its decision times, the local book per step
    (``book[k] = bid qty at best_bid - LEVELS + 1 .. best_bid, ask qty at best_ask .. + LEVELS - 1``) and
    the local best bid / ask per step (ticks)."""

    orders: pd.DataFrame
    times: np.ndarray
    best: np.ndarray
    book: np.ndarray
    fills: int
    pnl: float


# ------------------------------------------------------------------------------------------ ours
def _levels_at(ladder: np.ndarray, row: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    j = np.clip(np.searchsorted(ladder, ticks), 0, ladder.size - 1)
    return np.where(ladder[j] == ticks, row[j], 0.0)


def trace_ours(market: MarketData, spec: MMSpec = MMSpec(), start_ns: int | None = None, **overrides) -> Trace:
    """Run the reference market maker in our engine (one episode per session, as ``run_backtest``),
    logging every order's queue at arrival and at its end."""
    cfg = engine_config(spec, **overrides)
    prep = _prepare(market, cfg)
    times, _, kept = _grid(prep, _episodes(market, cfg, start_ns, None), cfg.decision_interval_ns)
    ex = K.Exchange(prep.events, prep.ladder, lo=prep.lo, hi=prep.hi, instrument=market.instrument, config=cfg,
                    steps=max(1, times.size))
    ladder = prep.ladder
    entry = int(ex.st[K.I_ENTRY])
    log: dict[int, dict] = {}
    best = np.zeros((times.size, 2), np.int64)
    book = np.zeros((times.size, 2 * LEVELS))
    off = np.arange(LEVELS)

    def scan(ts: int) -> None:
        """Update the log from the order table (before a slot can be reused)."""
        for s in range(int(ex.st[K.S_NSLOT])):
            oid = int(ex.o_i[s, K.OI_ID])
            rec = log.get(oid)
            if rec is None or rec["status"] not in (OPEN, "pending"):
                continue
            stt = int(ex.o_i[s, K.OI_STATUS])
            if stt == K.LIVE and rec["status"] == "pending":
                rec["status"], rec["front_arrival"] = OPEN, float(ex.o_f[s, K.OF_FRONT])
            elif stt == K.DONE:
                filled = ex.o_f[s, K.OF_LEAVES] <= 0.0
                if rec["status"] == "pending" and not filled:
                    rec["status"] = REJECTED
                else:
                    rec["status"] = FILLED if filled else CANCELLED
                rec["end_ts"] = int(ex.o_i[s, K.OI_DONE_TS])
                rec["front_end"] = float(ex.o_f[s, K.OF_FRONT])

    for s_, e_, k0, k1 in kept:
        ex.advance(int(times[k0]))
        for k in range(k0, k1):
            t = int(times[k])
            r = ex.step(k, t)
            scan(t)
            bb, ba, lpos = int(r[1]), int(r[2]), float(r[5])
            best[k] = bb, ba
            lb = ex.books[K.LOCAL]
            book[k, :LEVELS] = _levels_at(ladder, lb[0], bb - off[::-1])
            book[k, LEVELS:] = _levels_at(ladder, lb[1], ba + off)
            bid, ask, wb, wa = quote_ticks(bb, ba, lpos, spec)
            before = int(ex.st[K.S_NEXT_ID])
            ex.quote(k, t, bid if wb else NO_PRICE, spec.order_qty, ask if wa else NO_PRICE, spec.order_qty)
            for oid in range(before, int(ex.st[K.S_NEXT_ID])):
                slot = [s for s in range(int(ex.st[K.S_NSLOT])) if int(ex.o_i[s, K.OI_ID]) == oid]
                sd = int(ex.o_i[slot[0], K.OI_SIDE])
                log[oid] = dict(order_id=oid, side=sd, price=int(ex.o_i[slot[0], K.OI_PX]), submit_ts=t,
                                front_arrival=np.nan, status="pending", end_ts=-1, front_end=np.nan)
            ex.advance(t + entry)  # the new orders have arrived: their queue at arrival
            scan(t + entry)
        ex.advance(e_ - 1)
        scan(e_ - 1)
        ex.end_episode(e_, False)
    nf = ex.n_fills
    fills = pd.DataFrame({"order_id": ex.f_i[:nf, K.FI_OID], "fill_ts": ex.f_i[:nf, K.FI_TS],
                          "fill_price": ex.f_i[:nf, K.FI_PX]}).drop_duplicates("order_id")
    orders = pd.DataFrame(list(log.values()))
    orders = orders.merge(fills, on="order_id", how="left")
    orders["status"] = orders["status"].replace("pending", REJECTED)
    rec = ex.rec
    mid = 0.5 * (rec[-1, K.R_BID] + rec[-1, K.R_ASK])
    pnl = float(rec[-1, K.R_CASH] + market.instrument.value(rec[-1, K.R_POS], mid)) if times.size else 0.0
    return Trace(orders[ORDER_COLUMNS], times, best, book, nf, pnl)


# ----------------------------------------------------------------------------------- hftbacktest
_JIT: dict = {}


def _hbt_trace_fn():
    """The reference strategy of ``hftbacktest_ref`` plus an order log (jitted once per process)."""
    if "mm" in _JIT:
        return _JIT["mm"]
    from hftbacktest import CANCELED, EXPIRED, FILLED as H_FILLED, GTX, LIMIT, NEW
    from hftbacktest.order import REJECTED as H_REJECTED
    from hftbacktest.intrinsic import address_as_void_pointer
    from numba import carray, njit

    @njit
    def log_orders(hbt, olog, seen_ack):
        vals = hbt.orders(0).values()
        while vals.has_next():
            a = vals.get().arr[0]
            i = int(a.order_id)
            if i >= olog.shape[0]:
                continue
            # ``q`` is a Box<dyn AnyClone>: ``_q1`` its data pointer; a ZST box (``()``, never at the
            # exchange) holds a dangling small address: no queue then
            front = np.nan
            if a._q1 > np.uint64(1 << 16):
                front = carray(address_as_void_pointer(a._q1), 2, dtype=np.float64)[0]
            if a.status == NEW and seen_ack[i] == 0:
                seen_ack[i] = 1
                olog[i, 4] = front
            if a.status == H_FILLED or a.status == CANCELED or a.status == H_REJECTED or a.status == EXPIRED:
                olog[i, 5] = a.status
                olog[i, 6] = a.exch_timestamp
                olog[i, 7] = front
                olog[i, 8] = a.exec_price_tick

    @njit
    def mm(hbt, interval, qty, half, unit, max_pos, olog, seen_ack, steps_t, best, book, nlev, acct):
        bid_id = np.uint64(0)
        ask_id = np.uint64(0)
        bid_px = 0
        ask_px = 0
        next_id = np.uint64(1)
        k = 0
        while hbt.elapse(interval) == 0:
            log_orders(hbt, olog, seen_ack)
            hbt.clear_inactive_orders(0)
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb >= ba or bb < -(2**60) or ba > 2**60 or depth.best_bid_qty <= 0.0 or depth.best_ask_qty <= 0.0:
                continue
            if k < steps_t.shape[0]:
                steps_t[k] = hbt.current_timestamp
                best[k, 0] = bb
                best[k, 1] = ba
                for j in range(nlev):
                    book[k, nlev - 1 - j] = depth.bid_qty_at_tick(bb - j)
                    book[k, nlev + j] = depth.ask_qty_at_tick(ba + j)
            k += 1
            pos = hbt.position(0)
            skew = int(np.round(pos / unit))
            mid = 0.5 * (bb + ba)
            bid = min(int(np.floor(mid - half)) - skew, ba - 1)
            ask = max(int(np.ceil(mid + half)) - skew, bb + 1)
            want_b = pos < max_pos - 1e-9
            want_a = pos > -max_pos + 1e-9
            orders = hbt.orders(0)
            live = bid_id != 0 and bid_id in orders and orders.get(bid_id).status == NEW
            if not (live and want_b and bid_px == bid):
                if live:
                    hbt.cancel(0, bid_id, False)
                bid_id = np.uint64(0)
                if want_b and next_id < olog.shape[0]:
                    bid_id = next_id
                    next_id += np.uint64(1)
                    bid_px = bid
                    olog[bid_id, 0], olog[bid_id, 1], olog[bid_id, 2], olog[bid_id, 3] = bid_id, 1, bid, hbt.current_timestamp
                    hbt.submit_buy_order(0, bid_id, bid * depth.tick_size, qty, GTX, LIMIT, False)
            live = ask_id != 0 and ask_id in orders and orders.get(ask_id).status == NEW
            if not (live and want_a and ask_px == ask):
                if live:
                    hbt.cancel(0, ask_id, False)
                ask_id = np.uint64(0)
                if want_a and next_id < olog.shape[0]:
                    ask_id = next_id
                    next_id += np.uint64(1)
                    ask_px = ask
                    olog[ask_id, 0], olog[ask_id, 1], olog[ask_id, 2], olog[ask_id, 3] = ask_id, -1, ask, hbt.current_timestamp
                    hbt.submit_sell_order(0, ask_id, ask * depth.tick_size, qty, GTX, LIMIT, False)
            sv = hbt.state_values(0)
            acct[0] = sv.balance - sv.fee + sv.position * 0.5 * (bb + ba) * depth.tick_size
            acct[1] = sv.num_trades
        log_orders(hbt, olog, seen_ack)
        return k

    _JIT["mm"] = mm
    return mm


def trace_hbt(data: np.ndarray, tick_size: float, lot_size: float, spec: MMSpec = MMSpec(), max_steps: int = 0) -> Trace:
    """Run the reference market maker in hftbacktest with an order log."""
    from hftbacktest import CANCELED, HashMapMarketDepthBacktest

    mm = _hbt_trace_fn()
    n = max_steps or int((data["local_ts"].max() - data["local_ts"].min()) // spec.interval_ns + 10)
    olog = np.full((2 * n + 10, 9), np.nan)
    seen = np.zeros(olog.shape[0], np.int8)
    steps_t = np.zeros(n, np.int64)
    best = np.zeros((n, 2), np.int64)
    book = np.zeros((n, 2 * LEVELS))
    acct = np.zeros(2)
    hbt = HashMapMarketDepthBacktest([hbt_asset(data, tick_size, lot_size, spec)])
    k = mm(hbt, spec.interval_ns, spec.order_qty, spec.half_spread_ticks, spec.skew_unit, spec.max_position,
           olog, seen, steps_t, best, book, LEVELS, acct)
    hbt.close()
    o = olog[~np.isnan(olog[:, 0])]
    status = np.where(np.isnan(o[:, 5]), OPEN, np.where(o[:, 5] == 3, FILLED, np.where(o[:, 5] == CANCELED, CANCELLED, REJECTED)))
    filled = status == FILLED
    orders = pd.DataFrame({
        "order_id": o[:, 0].astype(np.int64), "side": o[:, 1].astype(np.int64), "price": o[:, 2].astype(np.int64),
        "submit_ts": o[:, 3].astype(np.int64), "front_arrival": o[:, 4], "status": status,
        "end_ts": np.nan_to_num(o[:, 6], nan=-1).astype(np.int64), "front_end": o[:, 7],
        "fill_ts": np.where(filled, o[:, 6], np.nan), "fill_price": np.where(filled, o[:, 8], np.nan),
    })
    return Trace(orders[ORDER_COLUMNS], steps_t[:k], best[:k], book[:k], int(acct[1]), float(acct[0]))


# -------------------------------------------------------------------------------------- matching
def twins(ours: pd.DataFrame, theirs: pd.DataFrame, tol_ns: int) -> pd.DataFrame:
    """Pairs of orders (``_o`` / ``_h`` columns) with the same side and price submitted within ``tol_ns``
    (nearest first, each order used once); unpaired orders of either engine have NaN on the other side."""
    a = ours.sort_values("submit_ts").reset_index(drop=True)
    b = theirs.sort_values("submit_ts").reset_index(drop=True)
    used = np.zeros(len(b), bool)
    pair = np.full(len(a), -1)
    groups = {key: g for key, g in b.groupby(["side", "price"])}
    for i, (sd, px, ts) in enumerate(zip(a.side.to_numpy(), a.price.to_numpy(), a.submit_ts.to_numpy())):
        g = groups.get((sd, px))
        if g is None:
            continue
        t = g.submit_ts.to_numpy()
        j = np.searchsorted(t, ts)
        best_j, best_d = -1, tol_ns + 1
        for c in (j - 1, j, j + 1):
            if 0 <= c < len(t) and not used[g.index[c]] and abs(int(t[c]) - int(ts)) < best_d:
                best_j, best_d = g.index[c], abs(int(t[c]) - int(ts))
        if best_j >= 0 and best_d <= tol_ns:
            used[best_j] = True
            pair[i] = best_j
    left = a.add_suffix("_o")
    right = b.add_suffix("_h")
    matched = pd.concat([left, right.iloc[np.where(pair >= 0, pair, 0)].reset_index(drop=True).where(
        pd.Series(pair >= 0), np.nan)], axis=1)
    rest = right[~used].reset_index(drop=True)
    return pd.concat([matched, rest], ignore_index=True)


def match_fills(ours: pd.DataFrame, theirs: pd.DataFrame, tol_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair the fills of the two order logs: same side, same price, fill (exchange) times within
    ``tol_ns``, in time order, each fill used once.  An order that rests unchanged over several steps
    is submitted at different steps in the two engines (their grids start apart), so fills, not
    submissions, are paired.  Returns per fill of each log (in ``fill_ts`` order) the index of its
    partner in the other's, or -1."""
    a = ours[ours.status == FILLED].sort_values("fill_ts").reset_index(drop=True)
    b = theirs[theirs.status == FILLED].sort_values("fill_ts").reset_index(drop=True)
    pa, pb = np.full(len(a), -1), np.full(len(b), -1)
    groups = {key: list(g.index) for key, g in b.groupby(["side", "price"])}
    for i, (sd, px, ts) in enumerate(zip(a.side, a.price, a.fill_ts)):
        for j in groups.get((sd, px), []):
            if pb[j] < 0 and abs(float(b.fill_ts[j]) - float(ts)) <= tol_ns:
                pa[i], pb[j] = j, i
                break
    return pa, pb


def _around(orders: pd.DataFrame, side: int, price: int, ts: int) -> pd.DataFrame:
    """The orders at ``side`` / ``price`` that were live at ``ts`` (or the latest one submitted before)."""
    o = orders[(orders.side == side) & (orders.price == price) & (orders.submit_ts <= ts)]
    live = o[(o.end_ts < 0) | (o.end_ts >= ts)]
    return live if len(live) else o.tail(1)


def _fmt_ts(t) -> str:
    if t is None or (isinstance(t, float) and np.isnan(t)) or t < 0:
        return "-"
    return pd.Timestamp(int(t), unit="ns").strftime("%H:%M:%S.%f")[:-3]


def _book_lines(tr: Trace, ts: int, name: str) -> list[str]:
    k = int(np.searchsorted(tr.times, ts, side="right") - 1)
    if k < 0:
        return [f"  {name}: no step before {_fmt_ts(ts)}"]
    bb, ba = tr.best[k]
    bids = " ".join(f"{int(bb) - LEVELS + 1 + j}:{q:g}" for j, q in enumerate(tr.book[k, :LEVELS]))
    asks = " ".join(f"{int(ba) + j}:{q:g}" for j, q in enumerate(tr.book[k, LEVELS:]))
    return [f"  {name} local book at step {_fmt_ts(tr.times[k])}: bids {bids} | asks {asks}"]


def report(ours: Trace, theirs: Trace, spec: MMSpec, show: int = 10, out=None) -> dict:
    """Print the trace (to ``out``, default the current ``sys.stdout``); return the summary numbers."""
    out = out or sys.stdout
    pr = lambda *a: print(*a, file=out)  # noqa: E731
    tw = twins(ours.orders, theirs.orders, spec.interval_ns // 2)
    fa = ours.orders[ours.orders.status == FILLED].sort_values("fill_ts").reset_index(drop=True)
    fb = theirs.orders[theirs.orders.status == FILLED].sort_values("fill_ts").reset_index(drop=True)
    pa, pb = match_fills(ours.orders, theirs.orders, spec.interval_ns)
    n_match, n_o, n_h = int((pa >= 0).sum()), int((pa < 0).sum()), int((pb < 0).sum())
    pr(f"orders ours {len(ours.orders)}  hbt {len(theirs.orders)}  twins {int((tw.order_id_o.notna() & tw.order_id_h.notna()).sum())}")
    pr(f"fills  ours {len(fa)}  hbt {len(fb)}  matched {n_match}  ours only {n_o}  hbt only {n_h}  "
       f"(same side and price, fill times within {spec.interval_ns / 1e6:g} ms)")
    pr(f"pnl    ours {ours.pnl:.4f}  hbt {theirs.pnl:.4f}")
    cols = ["side", "price", "submit_ts", "front_arrival", "status", "front_end", "fill_ts"]
    pr("first matched fills (queue at arrival / at the end, ours | hbt):")
    for i in np.flatnonzero(pa >= 0)[:show]:
        r, q = fa.iloc[i], fb.iloc[pa[i]]
        pr(f"  {'buy ' if r.side > 0 else 'sell'} px {int(r.price)} submit {_fmt_ts(r.submit_ts)} | "
           f"{_fmt_ts(q.submit_ts)}  q0 {r.front_arrival:.4g} | {q.front_arrival:.4g}  "
           f"fill {_fmt_ts(r.fill_ts)} | {_fmt_ts(q.fill_ts)}")
    twin = tw.order_id_o.notna() & tw.order_id_h.notna()
    d = (tw.front_arrival_o - tw.front_arrival_h)[twin].dropna()
    if len(d):
        pr(f"queue at arrival, ours - hbt over {len(d)} twin orders: mean {d.mean():+.4g}  median {d.median():+.4g}  "
           f"equal {(d.abs() < 1e-9).mean():.1%}  ours larger {(d > 1e-9).mean():.1%}  hbt larger {(d < -1e-9).mean():.1%}")
    fate = pd.crosstab(tw.status_o.fillna("no twin"), tw.status_h.fillna("no twin"))
    pr("fates of the orders (rows ours, columns hbt):")
    for line in fate.to_string().splitlines():
        pr("  " + line)
    cand = [(float(fa.fill_ts[i]), "ours", fa.iloc[i]) for i in np.flatnonzero(pa < 0)[:1]]
    cand += [(float(fb.fill_ts[j]), "hbt", fb.iloc[j]) for j in np.flatnonzero(pb < 0)[:1]]
    first_ts = -1
    if cand:
        t, who, r = min(cand, key=lambda c: c[0])
        first_ts = int(t)
        pr(f"first divergence: a fill only in {who} at {_fmt_ts(first_ts)} "
           f"(side {'buy' if r.side > 0 else 'sell'}, price {int(r.price)})")
        for eng, tr in (("ours", ours), ("hbt ", theirs)):
            rows = _around(tr.orders, int(r.side), int(r.price), first_ts)
            if not len(rows):
                pr(f"  {eng}: no order at that side and price before then")
            for _, x in rows.iterrows():
                pr(f"  {eng}: order {int(x.order_id)} submitted {_fmt_ts(x.submit_ts)}, queue at arrival "
                   f"{x.front_arrival:.6g}, {x.status} at {_fmt_ts(x.end_ts)}, queue then {x.front_end:.6g}")
        for ts in (int(r.submit_ts), first_ts):
            for line in _book_lines(ours, ts, "ours") + _book_lines(theirs, ts, "hbt "):
                pr(line)
    summary = dict(matched=n_match, ours_only=n_o, hbt_only=n_h, first_divergence_ts=first_ts)
    pr(" ".join(f"{k}={v}" for k, v in summary.items()))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="Binance capture file(s); a contiguous pair is joined")
    ap.add_argument("--tick-size", type=float, default=None, help="price tick, for a symbol the binance plugin does not know")
    ap.add_argument("--lot-size", type=float, default=None, help="lot size (default: the dataset manifests' lot, else 1)")
    ap.add_argument("--cache-dir", default=None, help="cache hftbacktest's converted array here")
    ap.add_argument("--minutes", type=float, default=None, help="only the first MINUTES of the capture (both engines)")
    ap.add_argument("--show", type=int, default=10, help="matched fills to print")
    ap.add_argument("--own-grid", action="store_true",
                    help="keep our decision grid's own phase (default: aligned on hftbacktest's)")
    a = ap.parse_args(argv)
    market, data, inst = load_both([Path(f) for f in a.data], a.tick_size, a.lot_size, a.cache_dir, a.minutes)
    spec = MMSpec()
    ours = trace_ours(market, spec, None if a.own_grid else aligned_start(market, data, spec.interval_ns))
    theirs = trace_hbt(data, inst.tick_size, inst.lot_size, spec)
    report(ours, theirs, spec, a.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
