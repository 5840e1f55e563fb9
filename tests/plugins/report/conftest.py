"""A small hand-built run (two episodes, quotes, fills, an extra table) for the reporter tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import FILL_COLUMNS, STEP_COLUMNS, BacktestOutput
from cmm_bt.metrics import compute_metrics
from cmm_bt.results import RunResult

S = 1_000_000_000
T0 = 1_682_899_200 * S  # 2023-05-01 00:00:00 UTC


def build_result(run_dir=None) -> RunResult:
    rng = np.random.default_rng(0)
    n = 900  # per episode, one step per second
    ts = np.r_[T0 + np.arange(n) * S, T0 + 3600 * S + np.arange(n) * S]
    episode = np.repeat([0, 1], n)
    mid = 19_900.5 + np.cumsum(rng.integers(-1, 2, 2 * n))
    position = np.r_[np.linspace(0, 3, n).round(), np.linspace(0, -2, n).round()]
    equity = np.r_[np.linspace(0, 1234.5, n), np.linspace(0, -234.5, n)]
    steps = pd.DataFrame({
        "ts": ts, "episode": episode, "best_bid": np.floor(mid), "best_ask": np.ceil(mid), "mid": mid,
        "position": position, "cash": equity, "equity": equity, "bid_quote": np.floor(mid) - 1,
        "ask_quote": np.ceil(mid) + 1, "decision_latency_ns": rng.integers(5_000, 50_000, 2 * n),
    })
    steps = steps.astype(STEP_COLUMNS)
    k = np.array([10, 50, 120, 400, 950, 1300])
    fills = pd.DataFrame({
        "ts": ts[k], "local_ts": ts[k] + 1000, "order_id": np.arange(1, 7), "side": [1, -1, 1, 1, -1, -1],
        "price": np.where(np.array([1, -1, 1, 1, -1, -1]) > 0, np.floor(mid[k]), np.ceil(mid[k])),
        "qty": 1.0, "fee": 0.25, "maker": True, "episode": episode[k], "mid_at_fill": mid[k],
    }).astype(FILL_COLUMNS)
    episodes = pd.DataFrame({
        "episode": [0, 1], "start_ns": [ts[0], ts[n]], "end_ns": [ts[n - 1], ts[-1]], "pnl": [1234.5, -234.5],
        "fees": [1.0, 0.5], "fills": [4, 2], "volume": [4.0, 2.0], "mean_abs_position": [1.5, 1.0],
        "max_abs_position": [3.0, 2.0],
    })
    out = BacktestOutput(Instrument("GCM3", 0.1, 100.0, currency="USD"), steps, fills, episodes,
                         counters={"events": 50_000, "orders_submitted": 12, "orders_filled": 6}, wall_s=0.25)
    return RunResult(
        run_name="fixed-cme-gc", strategy_name="fixed-spread", dataset_name="cme-gc", config={"name": "fixed-spread"},
        metrics=compute_metrics(out, wall_s=0.25), output=out,
        extra={"prediction_quality": pd.DataFrame({"task": ["mid", "spread", "volume"], "mae": [0.4321, 0.25, 1.5],
                                                   "r2": [0.12, 0.56, -0.03]})},
        run_dir=run_dir, split="test",
    )


@pytest.fixture
def sample_result() -> RunResult:
    return build_result()
