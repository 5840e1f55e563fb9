"""Mixture-of-experts plugins: ``hajek`` (CMM), ``mean``, ``gate`` and ``best-single`` (ablations).

All work per task on arrays: ``preds [B, K]`` (expert predictions of the task, in target units)
and ``emb [B, K, D]`` (the experts' projected embeddings in the common teacher space).  A fitted
mixer returns per-sample weights ``w [B, K]`` (rows sum to 1) and ``ŷ = Σ_k w_k ŷ_k``.

Hájek-MoE (docs/cmm.md): with an RBF kernel ``κ(a, b) = exp(−‖a − b‖² / h)``,
``U = 1/(K(K−1)) Σ_{i≠j} κ(e_i, e_j)``, ``c_k = 1/(K−1) Σ_{j≠k} κ(e_k, e_j) − U``,
``w = softmax(c / T)``.  Bandwidth ``h`` by the median heuristic: per sample, the median of the
squared distances over expert pairs i < j (``bandwidth: median``), or one value fitted on the
validation split (``median-global``), or a fixed number.  K = 1 gives weight 1; K = 2 always gives
equal weights (both experts agree with the consensus equally).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from cmm_bt_plugins.models.interfaces import MoE
from cmm_bt.errors import ConfigError


def _softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    a = a - np.max(a, axis=axis, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=axis, keepdims=True)


def pairwise_sq_dists(emb: np.ndarray) -> np.ndarray:
    """``[B, K, K]`` squared Euclidean distances between the experts of each sample."""
    emb = np.asarray(emb, dtype=np.float64)
    sq = np.einsum("bkd,bkd->bk", emb, emb)
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * np.einsum("bid,bjd->bij", emb, emb)
    return np.maximum(d2, 0.0)


def median_bandwidth(d2: np.ndarray) -> np.ndarray:
    """Per-sample median of the pairwise squared distances ``i < j`` (``[B]``), floored at 1e-12."""
    K = d2.shape[1]
    iu = np.triu_indices(K, 1)
    if len(iu[0]) == 0:
        return np.ones(d2.shape[0])
    return np.maximum(np.median(d2[:, iu[0], iu[1]], axis=1), 1e-12)


def hajek_contributions(emb: np.ndarray, bandwidth: np.ndarray | float | None = None) -> np.ndarray:
    """Hájek projections ``c [B, K]`` of the kernel consensus U-statistic (see module docstring)."""
    emb = np.asarray(emb, dtype=np.float64)
    B, K, _ = emb.shape
    if K < 2:
        return np.zeros((B, K))
    d2 = pairwise_sq_dists(emb)
    h = median_bandwidth(d2) if bandwidth is None else np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), (B,))
    kern = np.exp(-d2 / h[:, None, None])
    off = kern.sum(axis=2) - np.einsum("bkk->bk", kern)  # Σ_{j≠k} κ(e_k, e_j)
    U = off.sum(axis=1, keepdims=True) / (K * (K - 1))
    return off / (K - 1) - U


def hajek_weights(emb: np.ndarray, temperature: float = 1.0, bandwidth: np.ndarray | float | None = None) -> np.ndarray:
    """``w = softmax(c / T)`` per sample, ``[B, K]``."""
    c = hajek_contributions(emb, bandwidth)
    return _softmax(c / temperature, axis=1)


class Mixer(MoE):
    """Base: per-task fitting on the validation split, weights per sample."""

    def __init__(self, config: MoE.Config):
        super().__init__(config)
        self.state: dict[int, Any] = {}

    def fit_task(self, task: int, preds: np.ndarray, emb: np.ndarray, y: np.ndarray) -> None:
        """Fit the mixer of ``task`` on validation-split expert outputs and targets (default: nothing)."""

    def weights(self, task: int, preds: np.ndarray, emb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def combine(self, task: int, preds: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ŷ [B], w [B, K])``."""
        preds = np.asarray(preds, dtype=np.float64)
        if preds.ndim != 2:
            raise ValueError("preds must be [B, K]")
        w = self.weights(task, preds, emb)
        return (w * preds).sum(axis=1), w


class HajekMoE(Mixer):
    """Hájek-projection weights of the experts' kernel consensus in the common teacher space."""

    name = "hajek"

    class Config(MoE.Config):
        temperature: float = Field(default=0.05, gt=0, description="T in w = softmax(c / T); c_k lies in [−1, 1], so small T sharpens the weights.")
        bandwidth: str | float = Field(default="median", description="RBF bandwidth h in κ = exp(−‖a−b‖²/h): `median` (per sample, median squared pairwise distance), `median-global` (median over the validation split) or a positive number.")

    def fit_task(self, task: int, preds: np.ndarray, emb: np.ndarray, y: np.ndarray) -> None:
        bw = self.config.bandwidth
        if bw == "median-global":
            d2 = pairwise_sq_dists(emb)
            K = d2.shape[1]
            iu = np.triu_indices(K, 1)
            self.state[task] = float(max(np.median(d2[:, iu[0], iu[1]]), 1e-12)) if len(iu[0]) else 1.0
        elif bw == "median":
            self.state[task] = None
        else:
            try:
                v = float(bw)
            except ValueError:
                raise ConfigError(f"bandwidth must be median, median-global or a number, not {bw!r}", key="moe.params.bandwidth") from None
            if v <= 0:
                raise ConfigError("bandwidth must be positive", key="moe.params.bandwidth")
            self.state[task] = v

    def weights(self, task: int, preds: np.ndarray, emb: np.ndarray) -> np.ndarray:
        return hajek_weights(emb, self.config.temperature, self.state.get(task))


class MeanMoE(Mixer):
    """Uniform average of the experts."""

    name = "mean"

    def weights(self, task: int, preds: np.ndarray, emb: np.ndarray) -> np.ndarray:
        B, K = np.asarray(preds).shape
        return np.full((B, K), 1.0 / K)


class BestSingleMoE(Mixer):
    """The expert with the lowest validation mean squared error, per task."""

    name = "best-single"

    def fit_task(self, task: int, preds: np.ndarray, emb: np.ndarray, y: np.ndarray) -> None:
        ok = np.isfinite(y)
        mse = np.mean((np.asarray(preds)[ok] - np.asarray(y)[ok, None]) ** 2, axis=0)
        self.state[task] = int(np.argmin(mse))

    def weights(self, task: int, preds: np.ndarray, emb: np.ndarray) -> np.ndarray:
        if task not in self.state:
            raise RuntimeError("best-single: fit_task was not called for this task")
        B, K = np.asarray(preds).shape
        w = np.zeros((B, K))
        w[:, self.state[task]] = 1.0
        return w


class GateMoE(Mixer):
    """A learned softmax gate ``w = softmax(A·[e_1 … e_K] + b)`` on the experts' common-space embeddings,
    fitted on the validation split by full-batch gradient descent on the mixture's squared error
    (+ L2 on A)."""

    name = "gate"

    class Config(MoE.Config):
        steps: int = Field(default=300, ge=1, description="Full-batch Adam steps.")
        lr: float = Field(default=0.05, gt=0, description="Adam learning rate.")
        l2: float = Field(default=1e-3, ge=0, description="L2 penalty on the gate weights.")
        seed: int = Field(default=0, description="Seed of the gate's initialisation.")

    def fit_task(self, task: int, preds: np.ndarray, emb: np.ndarray, y: np.ndarray) -> None:
        import torch

        c = self.config
        ok = np.isfinite(y) & np.isfinite(preds).all(1)
        P, E, Y = np.asarray(preds)[ok], np.asarray(emb)[ok], np.asarray(y)[ok]
        B, K = P.shape
        feats = E.reshape(B, -1)
        mu, sd = feats.mean(0), feats.std(0) + 1e-8
        ysd = float(Y.std() + 1e-12)
        g = torch.Generator().manual_seed(c.seed)
        A = (0.01 * torch.randn(feats.shape[1], K, generator=g, dtype=torch.float64)).requires_grad_(True)
        b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
        Xf = torch.from_numpy((feats - mu) / sd)
        Pt, Yt = torch.from_numpy(P / ysd), torch.from_numpy(Y / ysd)
        opt = torch.optim.Adam([A, b], lr=c.lr)
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny problem: threads only add contention (and non-determinism)
        try:
            for _ in range(c.steps):
                opt.zero_grad()
                w = torch.softmax(Xf @ A + b, dim=1)
                loss = ((w * Pt).sum(1) - Yt).pow(2).mean() + c.l2 * A.pow(2).sum()
                loss.backward()
                opt.step()
        finally:
            torch.set_num_threads(prev)
        self.state[task] = (A.detach().numpy(), b.detach().numpy(), mu, sd)

    def weights(self, task: int, preds: np.ndarray, emb: np.ndarray) -> np.ndarray:
        if task not in self.state:
            raise RuntimeError("gate: fit_task was not called for this task")
        A, b, mu, sd = self.state[task]
        E = np.asarray(emb)
        feats = (E.reshape(E.shape[0], -1) - mu) / sd
        return _softmax(feats @ A + b, axis=1)


MOE_CLASSES: tuple[type[Mixer], ...] = (HajekMoE, MeanMoE, GateMoE, BestSingleMoE)
