"""Observations: the students' market features (plugins/features/market.py), standardised with training statistics.

An observation at decision step ``k`` is ``[window features (W x F, oldest step first), q / limit,
fraction of the episode left]``, float32.  The window part depends only on the market and is computed
for a whole grid at once (:func:`feature_windows`, vectorised numpy: no loop over steps or levels);
the last two entries are filled in per step by the environment and, identically, by the compiled
policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmm_bt.data.schema import MarketData


@dataclass(frozen=True)
class Normaliser:
    """Per-feature mean and standard deviation of the training split, and the clip of the standardised values."""

    mean: np.ndarray  # float64 [F]
    std: np.ndarray  # float64 [F]
    clip: float
    window: int
    levels: int

    @classmethod
    def fit(cls, steps: np.ndarray, valid: np.ndarray, window: int, levels: int, clip: float) -> "Normaliser":
        """Statistics of the per-step features ``steps [n, F]`` on the rows where ``valid``."""
        x = steps[valid].astype(np.float64) if valid.any() else steps.astype(np.float64)
        mean = x.mean(axis=0) if len(x) else np.zeros(steps.shape[1])
        std = x.std(axis=0) if len(x) else np.ones(steps.shape[1])
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(np.where(np.isfinite(mean), mean, 0.0), std, float(clip), int(window), int(levels))

    def apply(self, steps: np.ndarray) -> np.ndarray:
        """Standardised, clipped features, float32 ``[n, F]``."""
        z = (steps.astype(np.float64) - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def to_npz(self) -> dict:
        return {"mean": self.mean, "std": self.std, "clip": np.array([self.clip]), "shape": np.array([self.window, self.levels])}

    @classmethod
    def from_npz(cls, z) -> "Normaliser":
        w, k = (int(v) for v in z["shape"])
        return cls(np.asarray(z["mean"], np.float64), np.asarray(z["std"], np.float64), float(z["clip"][0]), w, k)


def feature_columns(window: int, levels: int) -> list[str]:
    """Names of the ``W x F`` window columns: ``<feature>@-<lag>`` (lag 0 is the decision step)."""
    from cmm_bt_plugins.features.market import feature_names

    names = feature_names(levels)
    return [f"{n}@-{window - 1 - i}" for i in range(window) for n in names]


def raw_features(market: MarketData, times: np.ndarray, episode_ids: np.ndarray | None, window: int, levels: int):
    """The FeatureSet of ``times`` (the students' features, past only)."""
    from cmm_bt_plugins.features.market import WindowSpec, build_feature_set

    return build_feature_set(market, times, WindowSpec(window=window, levels=levels, horizon=1), episode_ids)


def feature_windows(fs, norm: Normaliser) -> np.ndarray:
    """Standardised windows of a FeatureSet, flattened: float32 ``[N, W * F]`` (C-contiguous)."""
    z = norm.apply(fs.steps)  # [N + W - 1, F]
    n, w = len(fs), norm.window
    win = np.lib.stride_tricks.sliding_window_view(z, w, axis=0)  # [N, F, W]
    return np.ascontiguousarray(win.transpose(0, 2, 1).reshape(n, w * z.shape[1]))


def observation_bounds(n_features: int, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """The Box bounds: features in [-clip, clip], q / limit in [-1, 1], episode left in [0, 1]."""
    low = np.concatenate([np.full(n_features, -clip), [-1.0, 0.0]]).astype(np.float32)
    high = np.concatenate([np.full(n_features, clip), [1.0, 1.0]]).astype(np.float32)
    return low, high


__all__ = ["Normaliser", "feature_columns", "feature_windows", "observation_bounds", "raw_features"]
