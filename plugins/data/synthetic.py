"""The embedded default dataset: a seeded, event-driven limit-order-book simulator.

``SyntheticBook`` needs no files.  It simulates an L2 book in the spirit of Cont–Stoikov–Talreja
and queue-reactive models (limit orders, size-proportional cancellations, market orders that can
walk the book), driven by a latent fundamental price whose volatility and order-arrival intensity
switch between a calm and a volatile regime (a 2-state Markov chain).  The model and its equations
are documented in ``docs/synthetic-data.md``.

Output: normalised BOOK / TRADE / CLEAR events (``cmm_bt.data.schema``), sorted by ``exch_ts``;
each session starts with a CLEAR of both sides and a full book.  ``local_ts = exch_ts`` plus a
seeded feed latency, made non-decreasing.  ``meta["regimes"]`` lists the regime path as
``(ts_ns, regime)`` switch points (0 = calm, 1 = volatile) for research and tests.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from cmm_bt.components import DataSource, Params, SourcePart
from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, TRADE, Instrument, MarketData, make_events
from cmm_bt.errors import ConfigError

# Indices into the float parameter vector handed to the kernel.
(
    P_SIGMA0, P_SIGMA1, P_INT0, P_INT1, P_SW01, P_SW10, P_LIMIT, P_DEPTH, P_INSIDE, P_REFILL1,
    P_CANCEL, P_CANCEL1, P_MARKET, P_OSIZE, P_MMU, P_MSIG, P_BETA, P_ALPHA, P_SCALE, P_LATMIN,
    P_LATMAX, P_GAPSIG, P_SPREAD_SENS,
) = range(23)
N_PARAMS = 23



class SyntheticBook(DataSource):
    """Seeded synthetic L2 book with regime-switching volatility (no files needed)."""

    name: ClassVar[str] = "synthetic"
    #: Part of the data-cache key: bump it whenever the simulator's output for a given config changes.
    version: ClassVar[str] = "1"

    class Config(Params):
        seed: int = Field(7, ge=0, lt=2**32, description="Random seed; the same seed gives identical events.")
        sessions: int = Field(4, ge=1, le=1000, description="Number of trading sessions to simulate.")
        session_seconds: float = Field(3600.0, gt=0, description="Length of each session, seconds.")
        gap_seconds: float = Field(
            1800.0, ge=0, description="Pause between consecutive sessions, seconds (the fundamental keeps moving)."
        )
        start: str = Field(
            "2024-01-02T09:00:00Z", description="ISO-8601 UTC start of the first session."
        )
        snapshot_ms: float = Field(
            0.0,
            ge=0,
            description="Book granularity: 0 publishes every book change; > 0 publishes conflated level "
            "diffs every snapshot_ms milliseconds (trades are always published as they happen).",
        )
        symbol: str = Field("SYN", description="Instrument symbol when the dataset gives no instrument.")
        tick_size: float = Field(0.01, gt=0, description="Tick size when the dataset gives no instrument.")
        start_price: float = Field(100.0, gt=0, description="Initial fundamental price, in price units.")
        levels: int = Field(
            10, ge=2, le=100, description="Book depth per side, in ticks from that side's best price; "
            "orders further away are cancelled."
        )
        sigma_low: float = Field(0.4, ge=0, description="Fundamental volatility in the calm regime, ticks per sqrt(second).")
        sigma_high: float = Field(1.2, ge=0, description="Fundamental volatility in the volatile regime, ticks per sqrt(second).")
        intensity_low: float = Field(1.0, gt=0, description="Order-arrival intensity multiplier in the calm regime.")
        intensity_high: float = Field(2.0, gt=0, description="Order-arrival intensity multiplier in the volatile regime.")
        switch_to_high_per_s: float = Field(
            1 / 900, ge=0, description="Rate (1/s) of switching calm -> volatile (mean calm spell = 1/rate)."
        )
        switch_to_low_per_s: float = Field(
            1 / 450, ge=0, description="Rate (1/s) of switching volatile -> calm (mean volatile spell = 1/rate)."
        )
        limit_rate: float = Field(1.2, gt=0, description="Limit-order arrivals per second at a side's best price (calm regime).")
        limit_depth_scale: float = Field(
            4.0, gt=0, description="e-folding distance (ticks) of the limit-order arrival rate away from the best price."
        )
        inside_rate: float = Field(
            0.8, ge=0, description="Arrivals per second and per empty tick inside the spread, per side "
            "(orders that improve the best price and refill the spread)."
        )
        spread_refill_high: float = Field(
            0.3, gt=0, description="Multiplier on inside_rate in the volatile regime (< 1 widens spreads there)."
        )
        spread_sensitivity: float = Field(
            0.5, ge=0, description="How strongly the spread-refill rate falls when the mid is far from the "
            "fundamental (adverse-selection risk): inside rate times exp(-spread_sensitivity*|F-mid|/signal_scale)."
        )
        cancel_rate: float = Field(0.06, gt=0, description="Cancellations per resting order per second (calm regime).")
        cancel_high: float = Field(1.5, gt=0, description="Multiplier on cancel_rate in the volatile regime.")
        market_rate: float = Field(0.5, gt=0, description="Market orders per second per side (calm regime, no signal).")
        order_size_mean: float = Field(3.0, ge=1, description="Mean limit-order size, lots (geometric distribution).")
        market_size_median: float = Field(
            3.0, gt=0, description="Median market-order size, lots (log-normal; large ones walk the book)."
        )
        market_size_sigma: float = Field(1.0, ge=0, description="Log-normal sigma of market-order sizes.")
        flow_sensitivity: float = Field(
            0.9, ge=0, lt=1, description="beta: market-order direction response to the fundamental signal "
            "(buy rate times 1 + beta*s, sell rate times 1 - beta*s)."
        )
        book_sensitivity: float = Field(
            0.6, ge=0, lt=1, description="alpha: limit-order and cancellation asymmetry in response to the "
            "fundamental signal (makes queue imbalance informative)."
        )
        signal_scale: float = Field(
            2.0, gt=0, description="Ticks of (fundamental - mid) for the signal s = tanh((F - mid)/scale) to reach ~0.76."
        )
        latency_min_ms: float = Field(0.5, ge=0, description="Minimum feed latency local_ts - exch_ts, ms.")
        latency_max_ms: float = Field(2.0, ge=0, description="Maximum feed latency, ms (uniform between min and max).")
        gap_sigma: float = Field(0.25, ge=0, description="Fundamental volatility during gaps between sessions, ticks per sqrt(second).")

        @field_validator("start")
        @classmethod
        def _check_start(cls, v: str) -> str:
            try:
                pd.Timestamp(v)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"not an ISO-8601 time: {v!r}") from exc
            return v

        @model_validator(mode="after")
        def _check_latency(self) -> "SyntheticBook.Config":
            if self.latency_max_ms < self.latency_min_ms:
                raise ValueError("latency_max_ms must be >= latency_min_ms")
            return self

    def load(self, files: list[Path], instrument: Instrument | None, data_root: Path | None = None) -> MarketData:
        """Simulate the configured sessions; ``files`` must be empty and ``data_root`` is unused."""
        parts = [part.load() for part in self.parts(files, instrument, data_root)]
        events = pd.concat([m.events for m in parts], ignore_index=True)
        meta = dict(parts[0].meta, regimes=[r for m in parts for r in m.meta["regimes"]],
                    generation_s=sum(m.meta["generation_s"] for m in parts))
        return MarketData(events, parts[0].instrument, [m.sessions[0] for m in parts], meta)

    def parts(self, files: list[Path], instrument: Instrument | None, data_root: Path | None = None) -> list[SourcePart]:
        """One part per session (cached and replayed a session at a time)."""
        if files:
            raise ConfigError("the synthetic source reads no files; use `files: []`", key="files")
        c = self.config
        sessions = _Sessions(c, instrument or Instrument(symbol=c.symbol, tick_size=c.tick_size, multiplier=1.0))
        return [SourcePart(f"session {k}", (), partial(sessions.session, k)) for k in range(c.sessions)]


class _Sessions:
    """The simulation a session at a time.  The random stream runs on from one session to the next, so
    session ``k`` is simulated after sessions ``0 .. k - 1`` (asking for an earlier one starts again at
    session 0), and a buffer that proves too small is grown and the stream replayed from session 0."""

    def __init__(self, c: SyntheticBook.Config, instrument: Instrument):
        self.c, self.instrument, self.params = c, instrument, _param_vector(c)
        ts_start = pd.Timestamp(c.start)
        ts_start = ts_start.tz_localize("UTC") if ts_start.tzinfo is None else ts_start.tz_convert("UTC")
        self.start_ns = int(ts_start.value)
        self.session_ns, self.gap_ns = int(round(c.session_seconds * 1e9)), int(round(c.gap_seconds * 1e9))
        rate_guess = 4.0 * (c.limit_rate * c.limit_depth_scale + c.market_rate) * max(c.intensity_low, c.intensity_high)
        self.capacity = int(min(max(1e5, 1.5 * rate_guess * c.session_seconds), 5e8))
        self.reg_cap = 1024
        self.grid = max(1024, 40 * c.levels + 256)  # price grid (ticks) kept around the book, recentred as needed
        self._restart()

    def _restart(self) -> None:
        self.next, self.state = 0, (float(self.c.start_price / self.instrument.tick_size), 0, np.int64(0))

    def session(self, k: int) -> MarketData:
        if k < self.next:
            self._restart()
        t0 = time.perf_counter()
        while True:
            out = self._run()
            if out is None:
                self._restart()
            elif self.next == k + 1:
                out.meta["generation_s"] = time.perf_counter() - t0
                return out

    def _run(self) -> MarketData | None:
        """Session ``self.next``, or None when a buffer was too small (then grown)."""
        c, k = self.c, self.next
        res = _simulate(np.uint32(c.seed), k, k + 1, self.session_ns, self.gap_ns, self.start_ns, *self.state, c.levels,
                        self.params, int(round(c.snapshot_ms * 1e6)), self.capacity, self.reg_cap, self.grid)
        n, n_reg = res[0], res[1]
        if n < 0:
            if n == -1:
                self.capacity *= 2
            else:
                self.reg_cap *= 4
            return None
        self.next, self.state = k + 1, res[10:]
        ts, local, ev, side, price, qty, reg_ts, reg_val = res[2:10]
        events = make_events(exch_ts=ts[:n].copy(), local_ts=local[:n].copy(), ev=ev[:n].copy(), side=side[:n].copy(),
                             price=price[:n].copy(), qty=qty[:n].copy())
        s0 = self.start_ns + k * (self.session_ns + self.gap_ns)
        meta = {"source": "synthetic", "seed": c.seed,
                "regimes": [(int(a), int(b)) for a, b in zip(reg_ts[:n_reg], reg_val[:n_reg])]}
        return MarketData(events, self.instrument, [(s0, s0 + self.session_ns)], meta)


def _param_vector(c: SyntheticBook.Config) -> np.ndarray:
    p = np.zeros(N_PARAMS)
    p[P_SIGMA0], p[P_SIGMA1] = c.sigma_low, c.sigma_high
    p[P_INT0], p[P_INT1] = c.intensity_low, c.intensity_high
    p[P_SW01], p[P_SW10] = c.switch_to_high_per_s, c.switch_to_low_per_s
    p[P_LIMIT], p[P_DEPTH] = c.limit_rate, c.limit_depth_scale
    p[P_INSIDE], p[P_REFILL1] = c.inside_rate, c.spread_refill_high
    p[P_CANCEL], p[P_CANCEL1] = c.cancel_rate, c.cancel_high
    p[P_MARKET], p[P_OSIZE] = c.market_rate, c.order_size_mean
    p[P_MMU], p[P_MSIG] = math.log(c.market_size_median), c.market_size_sigma
    p[P_BETA], p[P_ALPHA], p[P_SCALE] = c.flow_sensitivity, c.book_sensitivity, c.signal_scale
    p[P_LATMIN], p[P_LATMAX] = c.latency_min_ms * 1e6, c.latency_max_ms * 1e6
    p[P_GAPSIG] = c.gap_sigma
    p[P_SPREAD_SENS] = c.spread_sensitivity
    return p


# ------------------------------------------------------------------------------------ kernel
@numba.njit(cache=True)
def _geom(mean):
    """Geometric size >= 1 with the given mean."""
    if mean <= 1.0:
        return 1.0
    return float(np.random.geometric(1.0 / mean))


@numba.njit(cache=True)
def _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, ev, side, px, qty):
    if n < cap:
        b_ts[n] = ts
        b_loc[n] = loc
        b_ev[n] = ev
        b_side[n] = side
        b_px[n] = px
        b_qty[n] = qty
    return n + 1


@numba.njit(cache=True)
def _publish(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, base, bq, aq, pub_b, pub_a):
    """Emit the level diffs between the book and the last published one: decreases first, then
    increases, so that every intermediate published book is a subset of the new one (never crossed)."""
    W = bq.shape[0]
    for phase in range(2):
        for i in range(W):
            if (bq[i] < pub_b[i]) if phase == 0 else (bq[i] > pub_b[i]):
                n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + i, bq[i])
                pub_b[i] = bq[i]
            if (aq[i] < pub_a[i]) if phase == 0 else (aq[i] > pub_a[i]):
                n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + i, aq[i])
                pub_a[i] = aq[i]
    return n


@numba.njit(cache=True)
def _simulate(seed, s_from, s_to, session_ns, gap_ns, start_ns, F, regime, last_loc, L, p, snap_ns, cap, reg_cap, W):
    """Sessions ``s_from .. s_to - 1``, continuing from the fundamental ``F``, the ``regime`` and the last
    local time of the sessions before (the random stream is seeded at session 0 and continues)."""
    if s_from == 0:
        np.random.seed(seed)
    b_ts = np.empty(cap, np.int64)
    b_loc = np.empty(cap, np.int64)
    b_ev = np.empty(cap, np.int8)
    b_side = np.empty(cap, np.int8)
    b_px = np.empty(cap, np.int64)
    b_qty = np.empty(cap, np.float64)
    reg_ts = np.empty(reg_cap, np.int64)
    reg_val = np.empty(reg_cap, np.int8)
    n_reg = 0

    bq = np.zeros(W)  # resting bid quantity by grid index (price = base + index)
    aq = np.zeros(W)
    pub_b = np.zeros(W)  # last published book (snapshot mode)
    pub_a = np.zeros(W)
    tmp = np.zeros(W)
    depth_w = np.empty(L)
    for d in range(L):
        depth_w[d] = math.exp(-d / p[P_DEPTH])
    rates = np.zeros(4 * L + 8)

    n = 0
    margin = 16 * L + 64
    snap = snap_ns > 0

    for s_idx in range(s_from, s_to):
        s0 = start_ns + s_idx * (session_ns + gap_ns)
        if s_idx > 0:
            F += p[P_GAPSIG] * math.sqrt(gap_ns * 1e-9) * np.random.normal()
        if n_reg >= reg_cap:
            return -2, n_reg, b_ts, b_loc, b_ev, b_side, b_px, b_qty, reg_ts, reg_val, F, regime, last_loc
        if n_reg < reg_cap:
            reg_ts[n_reg] = s0
            reg_val[n_reg] = regime
            n_reg += 1
        # ---- fresh book around the fundamental
        bq[:] = 0.0
        aq[:] = 0.0
        base = int(math.floor(F)) - W // 2
        bb = int(math.floor(F)) - base
        ba = bb + 1 + regime
        lam0 = p[P_LIMIT] * (p[P_INT0] if regime == 0 else p[P_INT1])
        th0 = p[P_CANCEL] * (1.0 if regime == 0 else p[P_CANCEL1])
        for d in range(L):
            eq = max(1.0, lam0 * depth_w[d] / th0 * (0.5 + np.random.random()))  # equilibrium orders
            bq[bb - d] = math.ceil(eq) * p[P_OSIZE]
            aq[ba + d] = math.ceil(eq * (0.5 + np.random.random())) * p[P_OSIZE]
        lat = p[P_LATMIN] + (p[P_LATMAX] - p[P_LATMIN]) * np.random.random()
        loc = max(last_loc, s0 + np.int64(lat))
        last_loc = loc
        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, s0, loc, CLEAR, BID, 0, 0.0)
        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, s0, loc, CLEAR, ASK, 0, 0.0)
        for i in range(W):
            if bq[i] > 0:
                n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, s0, loc, BOOK, BID, base + i, bq[i])
        for i in range(W):
            if aq[i] > 0:
                n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, s0, loc, BOOK, ASK, base + i, aq[i])
        pub_b[:] = bq
        pub_a[:] = aq
        last_snap = np.int64(0)
        t = 0.0
        T = session_ns * 1e-9

        while True:
            if n > cap - (16 * L + 128):
                return -1, n_reg, b_ts, b_loc, b_ev, b_side, b_px, b_qty, reg_ts, reg_val, F, regime, last_loc
            m = p[P_INT0] if regime == 0 else p[P_INT1]
            sig = p[P_SIGMA0] if regime == 0 else p[P_SIGMA1]
            canc = p[P_CANCEL] * (1.0 if regime == 0 else p[P_CANCEL1])
            refill = 1.0 if regime == 0 else p[P_REFILL1]
            mid = 0.5 * (bb + ba)
            dev = (F - (base + mid)) / p[P_SCALE]
            s = math.tanh(dev)
            spread = ba - bb
            alpha = p[P_ALPHA]
            # ---- competing rates: [mkt buy, mkt sell, in-bid, in-ask, switch, lim bid d, lim ask d, canc bid d, canc ask d]
            rates[0] = p[P_MARKET] * m * (1.0 + p[P_BETA] * s)
            rates[1] = p[P_MARKET] * m * (1.0 - p[P_BETA] * s)
            inside = p[P_INSIDE] * refill * m * (spread - 1) * math.exp(-p[P_SPREAD_SENS] * abs(dev))
            rates[2] = inside * (1.0 + alpha * s)
            rates[3] = inside * (1.0 - alpha * s)
            rates[4] = p[P_SW01] if regime == 0 else p[P_SW10]
            lam = p[P_LIMIT] * m
            for d in range(L):
                rates[5 + d] = lam * depth_w[d] * (1.0 + alpha * s)
                rates[5 + L + d] = lam * depth_w[d] * (1.0 - alpha * s)
                rates[5 + 2 * L + d] = canc * bq[bb - d] / p[P_OSIZE] * (1.0 - alpha * s)
                rates[5 + 3 * L + d] = canc * aq[ba + d] / p[P_OSIZE] * (1.0 + alpha * s)
            R = 0.0
            for k in range(5 + 4 * L):
                R += rates[k]
            dt = np.random.exponential(1.0 / R)
            t += dt
            F += sig * math.sqrt(dt) * np.random.normal()
            if t >= T:
                break
            ts = s0 + np.int64(t * 1e9)
            lat = p[P_LATMIN] + (p[P_LATMAX] - p[P_LATMIN]) * np.random.random()
            loc = max(last_loc, ts + np.int64(lat))
            last_loc = loc
            # ---- conflated snapshot: publish level diffs at each boundary passed
            if snap:
                k_snap = np.int64(t * 1e9) // snap_ns
                if k_snap > last_snap:
                    # changes since the last boundary are published at the next boundary after them
                    sts = s0 + (last_snap + 1) * snap_ns
                    last_snap = k_snap
                    n = _publish(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, sts, loc, base, bq, aq, pub_b, pub_a)
            # ---- pick the event
            u = np.random.random() * R
            k = 0
            acc = rates[0]
            while acc < u and k < 4 + 4 * L:
                k += 1
                acc += rates[k]
            old_bb = bb
            old_ba = ba
            if k == 0 or k == 1:  # market order, may walk the book
                size = math.ceil(math.exp(p[P_MMU] + p[P_MSIG] * np.random.normal()))
                if k == 0:
                    lim = old_ba + L
                    while size > 0 and ba < lim:
                        if aq[ba] <= 0:
                            ba += 1
                            continue
                        take = min(size, aq[ba])
                        aq[ba] -= take
                        size -= take
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, TRADE, BID, base + ba, take)
                        if not snap:
                            n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + ba, aq[ba])
                        if aq[ba] <= 0:
                            ba += 1
                    while ba < lim and aq[ba] <= 0:
                        ba += 1
                else:
                    lim = old_bb - L
                    while size > 0 and bb > lim:
                        if bq[bb] <= 0:
                            bb -= 1
                            continue
                        take = min(size, bq[bb])
                        bq[bb] -= take
                        size -= take
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, TRADE, ASK, base + bb, take)
                        if not snap:
                            n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + bb, bq[bb])
                        if bq[bb] <= 0:
                            bb -= 1
                    while bb > lim and bq[bb] <= 0:
                        bb -= 1
            elif k == 2 or k == 3:  # order improving the best price inside the spread
                off = 1 + int(np.random.random() * (spread - 1))
                if off > spread - 1:
                    off = spread - 1
                size = _geom(p[P_OSIZE])
                if k == 2:
                    bb = old_bb + off
                    bq[bb] += size
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + bb, bq[bb])
                else:
                    ba = old_ba - off
                    aq[ba] += size
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + ba, aq[ba])
            elif k == 4:  # regime switch
                regime = 1 - regime
                if n_reg >= reg_cap:
                    return -2, n_reg, b_ts, b_loc, b_ev, b_side, b_px, b_qty, reg_ts, reg_val, F, regime, last_loc
                if n_reg < reg_cap:
                    reg_ts[n_reg] = ts
                    reg_val[n_reg] = regime
                    n_reg += 1
            elif k < 5 + 2 * L:  # limit order at distance d from its side's best
                size = _geom(p[P_OSIZE])
                if k < 5 + L:
                    i = bb - (k - 5)
                    bq[i] += size
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + i, bq[i])
                else:
                    i = ba + (k - 5 - L)
                    aq[i] += size
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + i, aq[i])
            else:  # cancellation of one order at distance d
                size = _geom(p[P_OSIZE])
                if k < 5 + 3 * L:
                    i = bb - (k - 5 - 2 * L)
                    bq[i] = max(0.0, bq[i] - size)
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + i, bq[i])
                    if i == bb and bq[i] <= 0:
                        while bb > old_bb - L and bq[bb] <= 0:
                            bb -= 1
                else:
                    i = ba + (k - 5 - 3 * L)
                    aq[i] = max(0.0, aq[i] - size)
                    if not snap:
                        n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + i, aq[i])
                    if i == ba and aq[i] <= 0:
                        while ba < old_ba + L and aq[ba] <= 0:
                            ba += 1
            # ---- an emptied side is re-seeded one order deep, away from the other side
            if bq[bb] <= 0:
                bb = ba - 1 - int(np.random.geometric(0.5)) + 1 - regime
                if bb >= ba:
                    bb = ba - 1
                bq[bb] = _geom(p[P_OSIZE])
                if not snap:
                    n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + bb, bq[bb])
            if aq[ba] <= 0:
                ba = bb + 1 + int(np.random.geometric(0.5)) - 1 + regime
                aq[ba] = _geom(p[P_OSIZE])
                if not snap:
                    n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + ba, aq[ba])
            # ---- orders more than L-1 ticks behind a side's best are cancelled
            if bb > old_bb:
                lo = max(0, old_bb - L + 1)
                for i in range(lo, bb - L + 1):
                    if bq[i] > 0:
                        bq[i] = 0.0
                        if not snap:
                            n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, BID, base + i, 0.0)
            if ba < old_ba:
                hi = min(W - 1, old_ba + L - 1)
                for i in range(ba + L, hi + 1):
                    if aq[i] > 0:
                        aq[i] = 0.0
                        if not snap:
                            n = _emit(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, ts, loc, BOOK, ASK, base + i, 0.0)
            # ---- keep the book in the middle of the grid
            if bb < margin or ba > W - margin:
                shift = (bb + ba) // 2 - W // 2
                for arr in (bq, aq, pub_b, pub_a):
                    tmp[:] = 0.0
                    for i in range(W):
                        j = i + shift
                        if 0 <= j < W:
                            tmp[i] = arr[j]
                    arr[:] = tmp
                base += shift
                bb -= shift
                ba -= shift
        # ---- session end: publish the final conflated state
        if snap:
            sts = s0 + session_ns - 1
            last_loc = max(last_loc, sts + np.int64(p[P_LATMIN]))
            n = _publish(n, cap, b_ts, b_loc, b_ev, b_side, b_px, b_qty, sts, last_loc, base, bq, aq, pub_b, pub_a)
        if n > cap:
            return -1, n_reg, b_ts, b_loc, b_ev, b_side, b_px, b_qty, reg_ts, reg_val, F, regime, last_loc
    return n, n_reg, b_ts, b_loc, b_ev, b_side, b_px, b_qty, reg_ts, reg_val, F, regime, last_loc
