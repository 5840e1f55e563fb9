"""Uncertainty of run results: bootstrap confidence intervals, paired tests, model confidence sets.

Everything works on per-episode PnL (``episodes.parquet``): a run's EPnL is the mean over its
episodes, so its uncertainty is that of a mean over episodes. Episodes follow each other in time
and may be correlated, so intervals and paired tests use ``arch``'s stationary block bootstrap with
the block length of Politis–White (``arch.bootstrap.optimal_block_length``; 1 for fewer than
:data:`MIN_BLOCK_ESTIMATE` episodes), at least 1; with
fewer than :data:`MIN_EPISODES` episodes there is no interval (NaN), not a misleading one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cmm_bt.results import RunResult

MIN_EPISODES = 3
"""Fewest episodes an interval or a test is computed from."""

MIN_BLOCK_ESTIMATE = 10
"""Below this many episodes the block length is 1 (Politis–White needs a longer series)."""


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval, over ``n`` episodes."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a − b`` over episodes both runs played, its interval and two-sided p-value."""

    diff_mean: float
    low: float
    high: float
    p_value: float
    n: int


def _block(x: np.ndarray) -> float:
    from arch.bootstrap import optimal_block_length

    if x.size < MIN_BLOCK_ESTIMATE or np.allclose(x, x[0]):
        return 1.0  # too short to estimate the dependence: episodes resampled independently
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero autocovariance at some lag
        block = float(optimal_block_length(x)["stationary"].iloc[0])
    return max(1.0, block) if np.isfinite(block) else 1.0


def _bootstrap_means(x: np.ndarray, reps: int, seed: int) -> np.ndarray:
    from arch.bootstrap import StationaryBootstrap

    bs = StationaryBootstrap(_block(x), x, seed=np.random.default_rng(seed))
    return np.array([data[0][0].mean() for data in bs.bootstrap(reps)])


def mean_interval(values: np.ndarray, *, level: float = 0.95, reps: int = 2000, seed: int = 0) -> Interval:
    """The mean of ``values`` (episode order) with a percentile block-bootstrap interval."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_EPISODES:
        return Interval(float(x.mean()) if x.size else float("nan"), float("nan"), float("nan"), int(x.size))
    means = _bootstrap_means(x, reps, seed)
    a = (1.0 - level) / 2.0
    return Interval(float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a)), int(x.size))


def paired_difference(a: np.ndarray, b: np.ndarray, *, level: float = 0.95, reps: int = 2000, seed: int = 0) -> PairedDifference:
    """``a − b`` on paired episodes: mean, percentile block-bootstrap interval and the two-sided
    p-value of "no difference" (the share of bootstrap means of the centred differences at least
    as far from 0 as the observed mean)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < MIN_EPISODES:
        return PairedDifference(float(d.mean()) if d.size else float("nan"), float("nan"), float("nan"), float("nan"), int(d.size))
    obs = float(d.mean())
    means = _bootstrap_means(d, reps, seed)
    al = (1.0 - level) / 2.0
    centred = means - obs
    p = float((np.sum(np.abs(centred) >= abs(obs)) + 1) / (reps + 1))
    return PairedDifference(obs, float(np.quantile(means, al)), float(np.quantile(means, 1.0 - al)), min(p, 1.0), int(d.size))


def episode_frame(results: "list[RunResult]", names: list[str]) -> pd.DataFrame:
    """Episode PnL of each run (columns ``names``) on the episodes every run played, matched by
    their start time; rows in time order."""
    cols = {}
    for r, name in zip(results, names):
        eps = r.output.episodes
        cols[name] = pd.Series(eps["pnl"].to_numpy(float), index=eps["start_ns"].to_numpy())
    return pd.DataFrame(cols).dropna().sort_index()


def model_confidence_set(losses: pd.DataFrame, *, size: float = 0.05, reps: int = 2000, seed: int = 0) -> pd.Series:
    """Hansen–Lunde–Nason model confidence set (``arch.bootstrap.MCS``) of the columns of
    ``losses`` (one row per shared episode; e.g. ``-pnl``): each model's MCS p-value; the set at
    level ``size`` is the models with p-value > ``size``."""
    from arch.bootstrap import MCS

    if len(losses) < MIN_EPISODES or losses.shape[1] < 2:
        return pd.Series(np.nan, index=losses.columns, name="pvalue")
    # models with the same loss on every episode (e.g. two that never trade) cannot be told apart: the
    # set is computed over one of each (arch divides their zero difference by a zero variance) and each
    # twin gets its representative's p-value
    twin = losses.T.duplicated()
    distinct = losses.loc[:, ~twin.to_numpy()]
    rep = {c: next(d for d in distinct.columns if losses[d].equals(losses[c])) for c in losses.columns}
    if distinct.shape[1] < 2:
        return pd.Series(1.0, index=losses.columns, name="pvalue")
    block = max(_block(distinct[c].to_numpy()) for c in distinct.columns)
    mcs = MCS(distinct, size=size, reps=reps, block_size=int(round(block)), method="R", seed=np.random.default_rng(seed))
    mcs.compute()
    p = mcs.pvalues["Pvalue"]
    return pd.Series([float(p[rep[c]]) for c in losses.columns], index=losses.columns, name="pvalue")
