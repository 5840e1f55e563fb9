"""The one implementation of model inputs ``x_t`` and targets ``y_t`` shared by every model.

Teacher prompts, teacher heads, probes, students and the MoE all read a :class:`FeatureSet` built
by :func:`build_feature_set`, so "the data" means the same thing everywhere.

**Past only.** The state at decision time ``t`` uses exactly the longest prefix of the event
stream (in stream order) whose ``local_ts`` are all ``<= t`` — what the agent could have received
by then.  Changing any event after that prefix never changes ``X`` at ``t`` (tested).

**Steps.** Per-step features are computed at every grid time and at ``max(W, H) + 1`` extra
steps *before* the first grid time, spaced by the grid's median interval, so the first rows have
full windows of real (earlier) data.  Per step (``F = 4K + 5`` columns, :func:`feature_names`):

* ``bid_px_k``, ``ask_px_k`` (k = 1..K): level price minus mid, in ticks (bids negative).  A
  missing level sits one tick beyond the previous level (or beyond the mid) with size 0;
* ``bid_sz_k``, ``ask_sz_k``: ``log(1 + quantity)`` at the level;
* ``dmid``: mid change since the previous step, ticks;
* ``spread``: best ask minus best bid, ticks;
* ``flow``: signed traded quantity since the previous step (buyer-initiated positive), as
  ``sign(f) * log(1 + |f|)``;
* ``volume``: ``log(1 + traded quantity since the previous step)``;
* ``rvol``: realised volatility of mid changes, ``sqrt(mean(dmid^2))`` over the last ``W`` steps.

Before the first two-sided book, the mid is undefined: price, size, dmid and spread features are
0 and the row's ``book_valid`` is False.  Later one-sided or empty books carry the last mid and
spread forward.

**Targets** over the next ``H`` grid steps (row ``i`` looks at grid rows ``i+1 .. i+H``):
``mid`` = ``mid[i+H] - mid[i]`` (ticks), ``spread`` = mean spread over rows ``i+1..i+H`` (ticks),
``volume`` = ``log(1 + traded qty in (t_i, t_{i+H}])``.  ``target_valid`` is False for the last
``H`` rows, rows without a valid book, and (when ``episode_ids`` are given) rows whose horizon
crosses an episode boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import Field

from cmm_bt.components import Params
from cmm_bt.data.schema import TRADE, MarketData
from cmm_bt.errors import DataError

from cmm_bt_plugins.features.book_levels import NO_LEVEL, top_levels_at
from cmm_bt_plugins.models.signals import TASKS


class WindowSpec(Params):
    """What one model input ``x_t`` covers."""

    window: int = Field(32, ge=1, le=4096, description="W: decision steps per input window (the last W grid steps up to and including t).")
    levels: int = Field(5, ge=1, le=50, description="K: book levels per side in each step's features.")
    horizon: int = Field(10, ge=1, le=10_000, description="H: decision steps ahead that the targets look at.")


def feature_names(levels: int) -> list[str]:
    """Names of the ``F = 4K + 5`` per-step feature columns, in order."""
    ks = range(1, levels + 1)
    return ([f"bid_px_{k}" for k in ks] + [f"ask_px_{k}" for k in ks] + [f"bid_sz_{k}" for k in ks]
            + [f"ask_sz_{k}" for k in ks] + ["dmid", "spread", "flow", "volume", "rvol"])


@dataclass
class FeatureSet:
    """Inputs and targets of every model, one row per decision time.

    :ivar grid_ns: decision times (local clock, ns) ``[N]``.
    :ivar steps: per-step features ``float32 [N + W - 1, F]``; row ``i + W - 1`` is grid row ``i``.
    :ivar X: windows ``float32 [N, W, F]``, a read-only view on ``steps``: ``X[i, -1]`` is time ``t_i``.
    :ivar feature_names: the ``F`` column names.
    :ivar targets: DataFrame ``[N]`` with columns ``mid``, ``spread``, ``volume`` (see module doc).
    :ivar target_valid: bool ``[N]``: the targets of that row are defined.
    :ivar book_valid: bool ``[N]``: a two-sided book has been seen by ``t_i``.
    :ivar realised_vol: realised volatility of mid changes over the window ``[N]`` (past only).
    :ivar mid: mid at ``t_i`` in ticks ``[N]`` (last known; NaN before the first book).
    :ivar spread_now: spread at ``t_i`` in ticks ``[N]``.
    :ivar volume_past: ``log(1 + traded qty over the previous H steps)`` ``[N]`` (naive volume forecast).
    :ivar episode_ids: episode of each row, or None.
    :ivar spec: the :class:`WindowSpec` used.
    """

    grid_ns: np.ndarray
    steps: np.ndarray
    X: np.ndarray
    feature_names: list[str]
    targets: pd.DataFrame
    target_valid: np.ndarray
    book_valid: np.ndarray
    realised_vol: np.ndarray
    mid: np.ndarray
    spread_now: np.ndarray
    volume_past: np.ndarray
    spec: WindowSpec
    episode_ids: np.ndarray | None = None
    _hash: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.grid_ns.shape[0])

    def col(self, name: str) -> int:
        """Index of a feature column by name."""
        return self.feature_names.index(name)

    def y(self) -> np.ndarray:
        """Targets as ``float64 [N, 3]`` in :data:`TASKS` order (NaN where invalid)."""
        return self.targets[list(TASKS)].to_numpy(np.float64)

    def naive(self) -> pd.DataFrame:
        """Naive forecasts per task: zero mid change, current spread, last-H-steps volume."""
        return pd.DataFrame({"mid": np.zeros(len(self)), "spread": self.spread_now, "volume": self.volume_past})

    def data_hash(self) -> str:
        """sha256 (hex, 16 chars) of the inputs: spec, grid and per-step features."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(self.spec.model_dump_json().encode())
            h.update(np.ascontiguousarray(self.grid_ns).tobytes())
            h.update(np.ascontiguousarray(self.steps).tobytes())
            self._hash = h.hexdigest()[:16]
        return self._hash


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs (leading NaNs stay NaN)."""
    idx = np.where(np.isnan(a), 0, np.arange(a.size))
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    return out


def _rel_levels(px: np.ndarray, ref: np.ndarray, sign: float) -> np.ndarray:
    """Level prices minus ``ref`` (ticks); missing levels one tick beyond the previous one."""
    rel = np.where(px != NO_LEVEL, px - ref[:, None], np.nan)
    out = np.empty_like(rel)
    prev = np.zeros(rel.shape[0])
    for k in range(rel.shape[1]):
        col = rel[:, k]
        col = np.where(np.isnan(col), prev + sign, col)
        out[:, k] = col
        prev = col
    return out


def build_feature_set(
    market: MarketData, grid_ns: np.ndarray, spec: WindowSpec | None = None, episode_ids: np.ndarray | None = None
) -> FeatureSet:
    """Build inputs and targets at the decision times ``grid_ns`` (see the module doc).

    :param market: the normalised event stream (any span; only events up to each time are used).
    :param grid_ns: decision times, local clock, ns, non-decreasing, ``[N]`` with ``N >= 1``.
    :param spec: window, levels, horizon (defaults: 32, 5, 10).
    :param episode_ids: optional episode of each grid row; targets never cross an episode boundary.
    """
    spec = spec or WindowSpec()
    grid = np.asarray(grid_ns, dtype=np.int64)
    if grid.ndim != 1 or grid.size == 0:
        raise DataError("decision grid must be a non-empty 1-d array", key="grid_ns")
    if np.any(np.diff(grid) < 0):
        bad = int(np.flatnonzero(np.diff(grid) < 0)[0]) + 1
        raise DataError(f"decision times go backwards at row {bad}", key="grid_ns")
    if episode_ids is not None:
        episode_ids = np.asarray(episode_ids)
        if episode_ids.shape != grid.shape:
            raise DataError("episode_ids must have one entry per grid time", key="episode_ids")
    W, K, H = spec.window, spec.levels, spec.horizon
    N = grid.size
    dt = int(np.median(np.diff(grid))) if N > 1 else 1_000_000_000
    dt = max(dt, 1)
    P = max(W, H) + 1  # padding steps before the first grid time
    times = np.concatenate([grid[0] - dt * np.arange(P, 0, -1, dtype=np.int64), grid])
    M = times.size

    ev = market.events
    local = ev["local_ts"].to_numpy(np.int64)
    avail = np.maximum.accumulate(local) if local.size else local
    counts = np.searchsorted(avail, times, side="right").astype(np.int64)

    bpx, bsz, apx, asz = top_levels_at(ev, counts, K)
    valid = (bpx[:, 0] != NO_LEVEL) & (apx[:, 0] != NO_LEVEL)
    mid_raw = np.where(valid, 0.5 * (bpx[:, 0] + apx[:, 0]), np.nan)
    spr_raw = np.where(valid, (apx[:, 0] - bpx[:, 0]).astype(np.float64), np.nan)
    mid = _ffill(mid_raw)
    spread = _ffill(spr_raw)
    seen = ~np.isnan(mid)
    ref = np.where(seen, mid, 0.0)

    is_trade = ev["ev"].to_numpy() == TRADE
    tq = np.where(is_trade, ev["qty"].to_numpy(np.float64), 0.0)
    cum_vol = np.concatenate([[0.0], np.cumsum(tq)])[counts]
    cum_flow = np.concatenate([[0.0], np.cumsum(tq * ev["side"].to_numpy(np.float64))])[counts]
    vol_step = np.diff(cum_vol, prepend=cum_vol[0])
    flow_step = np.diff(cum_flow, prepend=cum_flow[0])

    dmid = np.diff(mid, prepend=np.nan)
    dmid = np.where(np.isnan(dmid), 0.0, dmid)
    c2 = np.concatenate([[0.0], np.cumsum(dmid * dmid)])
    j = np.arange(M)
    lo = np.maximum(j + 1 - W, 0)
    rvol = np.sqrt((c2[j + 1] - c2[lo]) / (j + 1 - lo))

    feats = np.zeros((M, 4 * K + 5), dtype=np.float64)
    feats[:, 0:K] = _rel_levels(bpx, ref, -1.0)
    feats[:, K:2 * K] = _rel_levels(apx, ref, +1.0)
    feats[:, 2 * K:3 * K] = np.log1p(bsz)
    feats[:, 3 * K:4 * K] = np.log1p(asz)
    feats[~seen, : 4 * K] = 0.0
    feats[:, 4 * K] = dmid
    feats[:, 4 * K + 1] = np.where(seen, spread, 0.0)
    feats[:, 4 * K + 2] = np.sign(flow_step) * np.log1p(np.abs(flow_step))
    feats[:, 4 * K + 3] = np.log1p(vol_step)
    feats[:, 4 * K + 4] = rvol
    steps = np.ascontiguousarray(feats[P - W + 1:].astype(np.float32))  # [N + W - 1, F]
    X = np.lib.stride_tricks.sliding_window_view(steps, W, axis=0).transpose(0, 2, 1)
    assert X.shape == (N, W, feats.shape[1])

    g = np.arange(N) + P  # index of grid row i in the padded step arrays
    fut = np.minimum(g + H, M - 1)
    has_future = np.arange(N) + H < N
    t_valid = has_future & seen[g]
    if episode_ids is not None:
        t_valid &= episode_ids[np.minimum(np.arange(N) + H, N - 1)] == episode_ids
    cs = np.concatenate([[0.0], np.cumsum(np.where(np.isnan(spread), 0.0, spread))])
    y_mid = mid[fut] - mid[g]
    y_spread = (cs[fut + 1] - cs[g + 1]) / H
    y_vol = np.log1p(cum_vol[fut] - cum_vol[g])
    targets = pd.DataFrame({
        "mid": np.where(t_valid, y_mid, np.nan),
        "spread": np.where(t_valid, y_spread, np.nan),
        "volume": np.where(t_valid, y_vol, np.nan),
    })
    volume_past = np.log1p(cum_vol[g] - cum_vol[g - H])
    return FeatureSet(
        grid_ns=grid, steps=steps, X=X, feature_names=feature_names(K), targets=targets,
        target_valid=t_valid, book_valid=seen[g].copy(), realised_vol=rvol[g].copy(),
        mid=mid[g].copy(), spread_now=spread[g].copy(), volume_past=volume_past, spec=spec, episode_ids=episode_ids,
    )


__all__ = ["TASKS", "WindowSpec", "FeatureSet", "feature_names", "build_feature_set"]
