"""Per-task teacher heads: teacher features -> predictions of ``mid``, ``spread``, ``volume``.

For each task a head maps the teacher features of chosen layers to the target:

* ``kind: ridge`` (default): closed-form ridge on standardised features (train mean/std), with an
  intercept; the penalty is ``alpha * n_train`` so ``alpha`` does not scale with the sample
  count.  ``alpha`` is chosen from ``alphas`` by validation R² (one SVD per layer set serves every
  alpha).
* ``kind: mlp``: a small torch MLP (one hidden layer, ``mlp_hidden`` units, GELU, Adam,
  full-batch, ``mlp_epochs`` epochs, weight decay, fixed seed) on the same standardised features,
  with standardised targets; the layer set is chosen like ridge's.

Layers: ``layers: best`` (default) picks, per task, the single layer whose ridge has the best
validation R²; a list of layers uses their concatenation for every task.

Training rows with a non-finite target are dropped per task.  Without validation samples the
last 20 % of the training samples (in time order) serve as validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from cmm_bt.components import Params

from cmm_bt_plugins.features.quality import TASKS, prediction_quality
from cmm_bt_plugins.llm.feature_cache import LayerFeatures


class HeadsConfig(Params):
    """Options of the teacher heads (see :mod:`cmm_bt_plugins.llm.heads`)."""

    kind: Literal["ridge", "mlp"] = Field("ridge", description="Head model: closed-form ridge or a small torch MLP.")
    layers: Literal["best"] | list[int] = Field(
        "best", description="'best': per task, the single layer with the best validation R²; or a list of "
        "hidden-state layers (0 = embeddings; negative from the end) concatenated for every task.")
    alphas: list[float] = Field([1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1, description="Ridge penalties tried (times n_train); the best on validation is kept.")
    mlp_hidden: int = Field(64, ge=1, description="MLP hidden units.")
    mlp_epochs: int = Field(300, ge=1, description="MLP full-batch Adam epochs.")
    mlp_lr: float = Field(3e-3, gt=0, description="MLP learning rate.")
    mlp_weight_decay: float = Field(1e-3, ge=0, description="MLP weight decay (AdamW).")
    seed: int = Field(0, description="Seed of the MLP initialisation.")


@dataclass
class _Standardiser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "_Standardiser":
        m = X.mean(0)
        s = X.std(0)
        return cls(m, np.where(s > 1e-12, s, 1.0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float64) - self.mean) / self.std


def _ridge_path(svd: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray, alphas: list[float]) -> list[tuple[np.ndarray, float]]:
    """Ridge solutions ``(w, b)`` for each alpha (penalty alpha * n) from the thin SVD of standardised inputs."""
    U, s, Vt = svd
    n = U.shape[0]
    ym = float(y.mean())
    Uty = U.T @ (y - ym)
    return [(Vt.T @ (s / (s * s + a * n) * Uty), ym) for a in alphas]


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    r = prediction_quality(y, p, "spread")["r2"]
    return float(r) if np.isfinite(r) else -np.inf


@dataclass
class TaskHead:
    """A fitted head of one task."""

    task: str
    layers: list[int]
    kind: str
    scaler: _Standardiser
    alpha: float | None = None
    w: np.ndarray | None = None
    b: float = 0.0
    mlp: object | None = None
    y_scale: tuple[float, float] = (0.0, 1.0)
    val_r2: float = float("nan")

    def predict(self, feats: LayerFeatures) -> np.ndarray:
        Xs = self.scaler(feats.stack(self.layers))
        if self.kind == "ridge":
            return Xs @ self.w + self.b
        import torch

        with torch.inference_mode():
            out = self.mlp(torch.as_tensor(Xs, dtype=torch.float32)).squeeze(-1).numpy().astype(np.float64)
        return out * self.y_scale[1] + self.y_scale[0]

    def n_params(self) -> int:
        if self.kind == "ridge":
            return int(self.w.size + 1)
        return int(sum(p.numel() for p in self.mlp.parameters()))


def _fit_mlp(Xs: np.ndarray, y: np.ndarray, cfg: HeadsConfig):
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    d = Xs.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, cfg.mlp_hidden), torch.nn.GELU(), torch.nn.Linear(cfg.mlp_hidden, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (1.0 / np.sqrt(p.shape[-1])))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.mlp_lr, weight_decay=cfg.mlp_weight_decay)
    X = torch.as_tensor(Xs, dtype=torch.float32)
    Y = torch.as_tensor(y, dtype=torch.float32).unsqueeze(-1)
    threads = torch.get_num_threads()
    if X.numel() < 2_000_000:  # tiny problems: thread hand-offs cost more than they save
        torch.set_num_threads(1)
    try:
        for _ in range(cfg.mlp_epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(X), Y)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    return net


@dataclass
class TeacherHeads:
    """Fitted heads for every task; :meth:`fit` then :meth:`predict`."""

    config: HeadsConfig = field(default_factory=HeadsConfig)
    heads: dict[str, TaskHead] = field(default_factory=dict)

    def fit(self, train: LayerFeatures, y_train: np.ndarray, val: LayerFeatures | None = None, y_val: np.ndarray | None = None) -> "TeacherHeads":
        """Fit one head per task.

        :param train: teacher features of the training samples.
        :param y_train: targets ``[len(train), 3]`` in :data:`TASKS` order (NaN = missing).
        :param val, y_val: validation samples for alpha / layer choice (optional).
        """
        y_train = np.asarray(y_train, np.float64)
        if val is None or len(val) == 0:
            cut = int(round(0.8 * len(train)))
            if cut < 2 or cut >= len(train):
                raise ValueError(f"teacher heads need at least 3 training samples (got {len(train)})")
            val, y_val = train.subset(np.arange(cut, len(train))), y_train[cut:]
            train, y_train = train.subset(np.arange(cut)), y_train[:cut]
        y_val = np.asarray(y_val, np.float64)
        n_layers = max(train.layers) + 1
        cfg = self.config
        prepared: dict[tuple, tuple[_Standardiser, np.ndarray | None, tuple]] = {}

        def prepare(layers: list[int], ok_tr: np.ndarray, ok_va: np.ndarray):
            """Scaler, scaled validation inputs and SVD of one layer set (shared by tasks with the same rows)."""
            key = (tuple(layers), ok_tr.tobytes(), ok_va.tobytes())
            if key not in prepared:
                Xtr = train.stack(layers)[ok_tr]
                sc = _Standardiser.fit(Xtr.astype(np.float64))
                Xv = sc(val.stack(layers)[ok_va]) if ok_va.any() else None
                prepared[key] = (sc, Xv, np.linalg.svd(sc(Xtr), full_matrices=False))
            return prepared[key]

        for t, task in enumerate(TASKS):
            ok_tr, ok_va = np.isfinite(y_train[:, t]), np.isfinite(y_val[:, t])
            if ok_tr.sum() < 2:
                raise ValueError(f"teacher head {task!r}: fewer than 2 training samples with a valid target")
            ytr, yva = y_train[ok_tr, t], y_val[ok_va, t]
            if cfg.layers == "best":
                candidates = [[l] for l in train.layers]
            else:
                candidates = [sorted({l + n_layers if l < 0 else l for l in cfg.layers})]
            best: tuple[float, list[int], float, tuple, _Standardiser] | None = None
            for layers in candidates:
                sc, Xv, svd = prepare(layers, ok_tr, ok_va)
                for alpha, (w, b) in zip(cfg.alphas, _ridge_path(svd, ytr, cfg.alphas)):
                    score = _r2(yva, Xv @ w + b) if Xv is not None else 0.0
                    if best is None or score > best[0]:
                        best = (score, layers, alpha, (w, b), sc)
            score, layers, alpha, (w, b), sc = best
            head = TaskHead(task, layers, cfg.kind, sc, alpha=alpha, w=w, b=b, val_r2=score)
            if cfg.kind == "mlp":
                ym, ys = float(ytr.mean()), float(ytr.std()) or 1.0
                head.mlp = _fit_mlp(sc(train.stack(layers)[ok_tr]), (ytr - ym) / ys, cfg)
                head.y_scale = (ym, ys)
                head.w, head.alpha = None, None
                if ok_va.any():
                    head.val_r2 = _r2(yva, head.predict(val.subset(np.flatnonzero(ok_va))))
            self.heads[task] = head
        return self

    def predict(self, feats: LayerFeatures) -> pd.DataFrame:
        """Predictions ``[len(feats)]`` with columns ``mid``, ``spread``, ``volume``."""
        if not self.heads:
            raise RuntimeError("teacher heads are not fitted")
        return pd.DataFrame({task: self.heads[task].predict(feats) for task in TASKS})

    def n_params(self) -> int:
        return int(sum(h.n_params() for h in self.heads.values()))

    def summary(self) -> pd.DataFrame:
        """One row per task: ``task, kind, layers, alpha, val_r2``."""
        return pd.DataFrame([{"task": h.task, "kind": h.kind, "layers": ",".join(map(str, h.layers)),
                              "alpha": h.alpha if h.alpha is not None else np.nan, "val_r2": h.val_r2}
                             for h in self.heads.values()])


__all__ = ["HeadsConfig", "TaskHead", "TeacherHeads"]
