"""Synthetic market inputs and a fake "teacher" whose layers carry planted targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_LAYERS = 6
MID_LAYER = 2
SPREAD_LAYER = 5


@dataclass
class Synthetic:
    X: np.ndarray  # [N, W, F]
    Y: np.ndarray  # [N, 3]
    vol: np.ndarray  # [N]
    features: dict  # layer -> [N_sel, H]
    sel: np.ndarray
    teacher_pred: np.ndarray  # [N_sel, 3]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def fake_hidden(X: np.ndarray, seed: int = 0, hidden: int = 12) -> dict[int, np.ndarray]:
    """Layer MID_LAYER encodes the mid driver, SPREAD_LAYER the spread driver, the others noise
    (a deterministic function of X, so it can be re-run on perturbed inputs)."""
    rng = np.random.default_rng(seed)
    n = len(X)
    mid = X[:, -1, 0]
    spread = X[:, -1, 1]
    noise_src = X[:, -1, 3:]  # columns unrelated to the targets
    out = {}
    for l in range(N_LAYERS):
        M = rng.normal(size=(noise_src.shape[1], hidden))
        h = np.tanh(noise_src @ M) + 0.1 * rng.normal(size=(n, hidden))
        v = rng.normal(size=hidden)
        if l == MID_LAYER:
            h = h + np.outer(mid, v)
        if l == SPREAD_LAYER:
            h = h + np.outer(spread, v)
        out[l] = h.astype(np.float32)
    return out


def make_synthetic(n: int = 900, window: int = 8, n_features: int = 6, stride: int = 2, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, window, n_features)).astype(np.float32)
    vol = np.abs(rng.normal(size=n)) + 0.1
    Y = np.stack(
        [
            1.5 * X[:, -1, 0] + 0.5 * X[:, -2, 0] + 0.2 * rng.normal(size=n),
            np.abs(X[:, -1, 1]) + X[:, -1, 1] + 0.2 * rng.normal(size=n),
            X[:, :, 2].mean(1) * 2 + 0.2 * rng.normal(size=n),
        ],
        axis=1,
    )
    Y[5, 1] = np.nan  # an invalid target must be tolerated
    sel = np.arange(0, n, stride)
    feats = fake_hidden(X[sel], seed=seed + 1)
    teacher_pred = Y[sel] + 0.3 * rng.normal(size=(len(sel), 3))
    idx = np.arange(n)
    return Synthetic(X, Y, vol, feats, sel, teacher_pred, idx[: int(0.6 * n)], idx[int(0.6 * n) : int(0.8 * n)], idx[int(0.8 * n) :])

