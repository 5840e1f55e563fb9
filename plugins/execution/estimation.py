"""Estimators for the classic market makers, computed from a training :class:`MarketData`.

All quantities are in ticks and seconds:

- :func:`mid_volatility` — σ, the standard deviation of mid-price changes on a regular time grid,
  scaled to one second (ticks / √s).
- :func:`arrival_depths` and :func:`fit_arrival_intensity` — the order-arrival intensity
  λ(δ) = A·exp(−kδ): for every depth δ (ticks from the prevailing mid) the number of market
  orders per second that reached at least δ, fitted log-linearly (A per second, k per tick).

The top of book comes from :func:`cmm_bt.data.topofbook.top_of_book` (a replay of BOOK/CLEAR events).
See ``docs/market-makers.md`` for the definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from cmm_bt.components import ExecutionPolicy, Params, RunContext
from cmm_bt.data.schema import BID, TRADE, MarketData
from cmm_bt.data.topofbook import NO_PRICE, top_of_book
from cmm_bt.errors import ConfigError



class EstimationParams(Params):
    """Options of the training-split estimators, shared by the model-based policies."""

    vol_interval_ms: int = Field(100, gt=0, description="Grid step (ms) on which the mid is sampled to measure σ.")
    max_depth_ticks: float = Field(
        50.0, gt=0, description="Deepest δ (ticks from the mid) used in the arrival-intensity fit."
    )
    min_count: int = Field(
        5, ge=1, description="A depth enters the λ(δ) fit only if at least this many market orders reached it."
    )
    min_orders: int = Field(
        30, ge=2, description="Fewest market orders (trade groups) needed to fit λ(δ); fewer is a ConfigError."
    )
    min_vol_samples: int = Field(
        30, ge=2, description="Fewest mid changes on the grid needed to estimate σ; fewer is a ConfigError."
    )


# ------------------------------------------------------------------------------- top of book
def top_of_book_per_event(data: MarketData) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and best ask (ticks, int64) after each event of ``data`` (``NO_PRICE`` when empty),
    from the shared replay :func:`cmm_bt.data.topofbook.top_of_book`."""
    if len(data.events) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    best_bid, best_ask, _, _ = top_of_book(data.events)
    return best_bid, best_ask


def _mid(best_bid: np.ndarray, best_ask: np.ndarray) -> np.ndarray:
    """Mid in ticks (float), NaN where a side is empty."""
    ok = (best_bid != NO_PRICE) & (best_ask != NO_PRICE)
    return np.where(ok, 0.5 * (best_bid.astype(np.float64) + best_ask.astype(np.float64)), np.nan)


def _sessions(data: MarketData) -> list[tuple[int, int]]:
    if data.sessions:
        return [(int(s), int(e)) for s, e in data.sessions if e > s]
    return [(data.start_ns, data.end_ns)] if data.end_ns > data.start_ns else []


def _too_short(what: str, detail: str) -> ConfigError:
    return ConfigError(f"training split too short to estimate {what}: {detail}", key="split.train")


# --------------------------------------------------------------------------------- volatility
@dataclass(frozen=True)
class MidGrid:
    """The mid price sampled on a regular grid inside each session.

    :ivar ts: grid times, ns.
    :ivar mid: mid in ticks after all events with ``exch_ts <= ts`` (NaN when one-sided).
    :ivar session: index of the session each grid time belongs to.
    """

    ts: np.ndarray
    mid: np.ndarray
    session: np.ndarray


def mid_grid(data: MarketData, interval_ns: int, *, tob: tuple[np.ndarray, np.ndarray] | None = None) -> MidGrid:
    """Sample the mid on ``session_start + i * interval_ns`` for each session of ``data``."""
    best_bid, best_ask = tob if tob is not None else top_of_book_per_event(data)
    mid_ev = _mid(best_bid, best_ask)
    ts_ev = data.events["exch_ts"].to_numpy(np.int64)
    ts_parts, sess_parts = [], []
    for i, (s, e) in enumerate(_sessions(data)):
        g = np.arange(s, e + 1, interval_ns, dtype=np.int64)
        ts_parts.append(g)
        sess_parts.append(np.full(g.size, i, np.int32))
    ts = np.concatenate(ts_parts) if ts_parts else np.empty(0, np.int64)
    sess = np.concatenate(sess_parts) if sess_parts else np.empty(0, np.int32)
    pos = np.searchsorted(ts_ev, ts, side="right") - 1
    mid = np.where(pos >= 0, mid_ev[np.clip(pos, 0, None)] if mid_ev.size else np.nan, np.nan)
    return MidGrid(ts, mid.astype(np.float64), sess)


def mid_volatility(
    data: MarketData, interval_ns: int = 100_000_000, *, min_samples: int = 30, tob=None
) -> float:
    """σ: standard deviation of mid changes between consecutive grid points of one session,
    scaled to one second (ticks / √s).  Changes across session gaps are not used."""
    if len(data.events) == 0:
        raise _too_short("the mid volatility", "it has no events")
    g = mid_grid(data, interval_ns, tob=tob)
    same = g.session[1:] == g.session[:-1]
    d = (g.mid[1:] - g.mid[:-1])[same]
    d = d[np.isfinite(d)]
    if d.size < min_samples:
        raise _too_short(
            "the mid volatility", f"{d.size} mid changes on a {interval_ns / 1e6:g} ms grid, need {min_samples}"
        )
    return float(np.std(d, ddof=1) / np.sqrt(interval_ns / 1e9))


# ------------------------------------------------------------------------ arrival intensity
def arrival_depths(data: MarketData, *, tob=None) -> np.ndarray:
    """How far (ticks) each market order reached beyond the prevailing mid.

    A market order is a run of consecutive TRADE events with the same ``exch_ts`` and aggressor
    side; its depth is ``max(price) - mid`` for a buy and ``mid - min(price)`` for a sell.  The
    prevailing mid is the one after all events with an earlier timestamp (so book updates stamped
    with the trade itself, which may already show its impact, are not used).  Orders met while the
    book is one-sided are skipped.
    """
    ev_df = data.events
    if len(ev_df) == 0:
        return np.empty(0)
    best_bid, best_ask = tob if tob is not None else top_of_book_per_event(data)
    mid_ev = _mid(best_bid, best_ask)
    ts = ev_df["exch_ts"].to_numpy(np.int64)
    ev = ev_df["ev"].to_numpy(np.int8)
    tr = np.flatnonzero(ev == TRADE)
    if tr.size == 0:
        return np.empty(0)
    side = ev_df["side"].to_numpy(np.int8)[tr].astype(np.int64)
    price = ev_df["price"].to_numpy(np.int64)[tr].astype(np.float64)
    t_tr = ts[tr]
    before = np.searchsorted(ts, t_tr, side="left") - 1  # last event with a strictly earlier ts
    mid = np.where(before >= 0, mid_ev[np.clip(before, 0, None)], np.nan)
    depth = np.where(side == BID, price - mid, mid - price)  # BID (+1) = buyer-initiated
    # group consecutive trades (in the TRADE subsequence) with the same ts and side
    new = np.ones(tr.size, bool)
    new[1:] = (t_tr[1:] != t_tr[:-1]) | (side[1:] != side[:-1])
    gid = np.cumsum(new) - 1
    out = np.full(int(gid[-1]) + 1, -np.inf)
    np.maximum.at(out, gid, np.where(np.isfinite(depth), depth, -np.inf))
    ok = np.full(out.size, True)
    np.logical_and.at(ok, gid, np.isfinite(mid))
    return out[ok & np.isfinite(out)]


@dataclass(frozen=True)
class ArrivalFit:
    """λ(δ) = A·exp(−kδ) fitted to ``rate`` at ``depth``.

    :ivar A: intensity at the mid, market orders per second.
    :ivar k: decay per tick of depth.
    :ivar depth: depths δ used in the fit (ticks).
    :ivar rate: measured λ(δ) at those depths (orders per second).
    :ivar orders: market orders measured; ``seconds``: time they were counted over.
    """

    A: float
    k: float
    depth: np.ndarray
    rate: np.ndarray
    orders: int
    seconds: float


def fit_intensity_from_depths(
    depths: np.ndarray,
    seconds: float,
    *,
    max_depth_ticks: float = 50.0,
    min_count: int = 5,
    min_orders: int = 30,
) -> ArrivalFit:
    """Fit λ(δ) = A·exp(−kδ) to market-order arrival depths observed over ``seconds``.

    λ(δ) = #{orders with depth ≥ δ} / seconds is evaluated at every distinct depth ≥ 0.5 tick that
    some order reached (depths are multiples of half a tick), up to ``max_depth_ticks``, keeping
    depths reached by at least ``min_count`` orders; log λ is then fitted linearly in δ by least
    squares weighted by the counts (the inverse Poisson variance of a log count).
    """
    depths = np.asarray(depths, np.float64)
    depths = np.round(depths[np.isfinite(depths)] * 2.0) / 2.0  # to half ticks
    if depths.size < min_orders:
        raise _too_short("the order-arrival intensity", f"{depths.size} market orders, need {min_orders}")
    if seconds <= 0:
        raise _too_short("the order-arrival intensity", "it spans no time")
    grid = np.unique(depths[(depths >= 0.5) & (depths <= max_depth_ticks)])
    srt = np.sort(depths)
    counts = (srt.size - np.searchsorted(srt, grid, side="left")).astype(np.float64)
    keep = counts >= min_count
    grid, counts = grid[keep], counts[keep]
    if grid.size < 2:
        raise _too_short(
            "the order-arrival intensity",
            f"only {grid.size} depth(s) reached by at least {min_count} market orders, need 2",
        )
    rate = counts / seconds
    w = counts
    x, y = grid, np.log(rate)
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    slope = np.sum(w * (x - xm) * (y - ym)) / np.sum(w * (x - xm) ** 2)
    k = -float(slope)
    if not k > 0:
        raise ConfigError(
            f"order-arrival intensity does not decay with depth (fitted k = {k:.4g}); set k and A explicitly",
            key="split.train",
        )
    A = float(np.exp(ym - slope * xm))
    return ArrivalFit(A=A, k=k, depth=grid, rate=rate, orders=int(depths.size), seconds=float(seconds))


def fit_arrival_intensity(data: MarketData, params: EstimationParams | None = None, *, tob=None) -> ArrivalFit:
    """Measure market-order arrival depths in ``data`` and fit λ(δ) = A·exp(−kδ) (per second)."""
    p = params or EstimationParams()
    if len(data.events) == 0:
        raise _too_short("the order-arrival intensity", "it has no events")
    seconds = sum(e - s for s, e in _sessions(data)) / 1e9
    return fit_intensity_from_depths(
        arrival_depths(data, tob=tob),
        seconds,
        max_depth_ticks=p.max_depth_ticks,
        min_count=p.min_count,
        min_orders=p.min_orders,
    )


def estimate(data: MarketData | None, params: EstimationParams, *, need_sigma: bool, need_intensity: bool):
    """σ and/or the intensity fit from the training split; ``None`` for what was not needed."""
    if not (need_sigma or need_intensity):
        return None, None
    if data is None:
        raise ConfigError(
            "no training split to estimate from; give sigma/k/A in the params or configure a train split",
            key="split.train",
        )
    tob = top_of_book_per_event(data)
    sigma = (
        mid_volatility(data, params.vol_interval_ms * 1_000_000, min_samples=params.min_vol_samples, tob=tob)
        if need_sigma
        else None
    )
    fit = fit_arrival_intensity(data, params, tob=tob) if need_intensity else None
    return sigma, fit


class EstimatedPolicy(ExecutionPolicy):
    """An execution policy whose σ, A and k (``self.sigma``, ``self.A``, ``self.k``) default to
    estimates from the training split; its ``Config`` has ``sigma`` and ``k`` (None = estimate)."""

    def __init__(self, config):
        super().__init__(config)
        self.context: RunContext | None = None
        self.sigma: float | None = config.sigma
        self.A: float | None = getattr(config, "A", None)
        self.k: float | None = config.k

    def fit(self, context: RunContext) -> None:
        """Estimate σ, A and k from ``context.train`` where the config leaves them unset."""
        self.context = context
        c = self.config
        sigma, fit = estimate(context.train, c, need_sigma=c.sigma is None, need_intensity=c.k is None)
        if sigma is not None:
            self.sigma = sigma
        if fit is not None:
            self.A, self.k = fit.A, fit.k

    @property
    def fitted(self) -> dict[str, float | None]:
        """The parameters in use (estimated or given)."""
        return {"sigma": self.sigma, "A": self.A, "k": self.k}

    @property
    def gamma(self) -> float | None:
        """γ in use: the configured ``gamma``, else the policy's γ for its scale-free ``risk_aversion``
        (None while an estimate it needs is unknown, i.e. before ``fit``)."""
        c = self.config
        if getattr(c, "gamma", None) is not None:
            return c.gamma
        return self._gamma_from_risk_aversion(c.risk_aversion)

    def _gamma_from_risk_aversion(self, risk_aversion: float) -> float | None:
        """The absolute γ meant by ``risk_aversion`` for this instrument (None: not known yet)."""
        raise NotImplementedError(f"{type(self).__name__} has no scale-free risk aversion")

    def fitted_parameters(self) -> dict[str, float]:
        """:attr:`fitted` without the unknown ones (``metrics.json``: ``fitted_sigma``, ``fitted_A`` ...)."""
        return {k: float(v) for k, v in self.fitted.items() if v is not None}
