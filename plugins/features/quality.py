"""Prediction-quality metrics and naive baselines, shared by the teacher heads, students and MoE.

Metrics per task (:func:`prediction_quality`), on finite pairs only:

* ``mae`` = mean |y - ŷ|; ``rmse`` = sqrt(mean (y - ŷ)²);
* ``r2`` = 1 - SSE / SST with SST around the mean of ``y`` (can be negative; NaN when SST = 0);
* ``diracc`` (task ``mid`` only): among samples whose true mid change is non-zero, the fraction
  where ``sign(ŷ) == sign(y)``; a zero prediction counts as a miss (so the zero-change baseline
  scores 0); NaN when no true move is non-zero;
* ``n``: number of samples used.

Naive baselines (:func:`naive_predictions`): zero mid change, the current spread, and the log
volume traded over the previous H steps (``FeatureSet.naive()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from cmm_bt_plugins.models.signals import TASKS

if TYPE_CHECKING:
    from cmm_bt_plugins.features.market import FeatureSet


def prediction_quality(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> dict[str, float]:
    """MAE, RMSE, R² (and direction accuracy for ``mid``) of one task's predictions."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape} vs {p.shape}")
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    out: dict[str, float] = {"n": float(y.size)}
    if y.size == 0:
        out.update(mae=np.nan, rmse=np.nan, r2=np.nan)
        if task == "mid":
            out["diracc"] = np.nan
        return out
    err = y - p
    sst = float(np.sum((y - y.mean()) ** 2))
    out["mae"] = float(np.mean(np.abs(err)))
    out["rmse"] = float(np.sqrt(np.mean(err * err)))
    out["r2"] = float(1.0 - np.sum(err * err) / sst) if sst > 0 else np.nan
    if task == "mid":
        moved = y != 0
        out["diracc"] = float(np.mean(np.sign(p[moved]) == np.sign(y[moved]))) if moved.any() else np.nan
    return out


def naive_predictions(fs: "FeatureSet") -> pd.DataFrame:
    """Naive forecasts aligned with ``fs``: columns ``mid`` (0), ``spread`` (now), ``volume`` (last H steps)."""
    return fs.naive()


def quality_table(y_true: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], mask: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (model, task): ``model, task, n, mae, rmse, r2, diracc``.

    :param y_true: true targets, columns = tasks.
    :param predictions: model name -> DataFrame with the same task columns (and rows) as ``y_true``.
    :param mask: optional bool row filter applied to all of them.
    """
    rows = []
    for model, pred in predictions.items():
        for task in TASKS:
            if task not in y_true or task not in pred:
                continue
            yt = y_true[task].to_numpy(np.float64)
            yp = np.asarray(pred[task], dtype=np.float64)
            if mask is not None:
                yt, yp = yt[mask], yp[mask]
            q = prediction_quality(yt, yp, task)
            rows.append({"model": model, "task": task, **q})
    cols = ["model", "task", "n", "mae", "rmse", "r2", "diracc"]
    return pd.DataFrame(rows).reindex(columns=cols)


__all__ = ["TASKS", "prediction_quality", "naive_predictions", "quality_table"]
