"""The training curve as a PNG: mean episode reward (training, validation) and validation PnL against timesteps."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def curve_png(curve: pd.DataFrame, title: str = "training", dpi: int = 100) -> bytes:
    """Two panels over timesteps: mean episode reward (training: the last 100 episodes; validation) and
    validation PnL (the engine's backtest of the validation split), the selected evaluation marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    x = curve["timesteps"].to_numpy(np.float64)
    y = curve["train_reward_mean"].to_numpy(np.float64)
    ok = np.isfinite(y)
    ax1.plot(x[ok], y[ok], marker="o", ms=3, color="tab:blue", label="training (last 100 episodes)")
    ax1.plot(x, curve["validation_reward"].to_numpy(np.float64), marker="s", ms=3, color="tab:orange", label="validation")
    ax1.legend(loc="best")
    ax1.set_title("mean episode reward")
    ax1.set_xlabel("timesteps")
    ax1.grid(alpha=0.3)
    v = curve["validation_pnl"].to_numpy(np.float64)
    ax2.plot(x, v, marker="o", ms=3, color="tab:green")
    sel = curve["selected"].to_numpy(bool)
    if sel.any():
        ax2.scatter(x[sel], v[sel], s=80, facecolors="none", edgecolors="tab:red", label="selected", zorder=3)
        ax2.legend(loc="best")
    ax2.axhline(0.0, color="grey", lw=0.8)
    ax2.set_title("validation PnL (engine backtest)")
    ax2.set_xlabel("timesteps")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
