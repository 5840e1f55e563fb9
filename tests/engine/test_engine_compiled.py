"""The compiled-policy path (``ExecutionPolicy.compiled``) gives exactly the Python path's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numba import njit

from cmm_bt.components import NO_PRICE, ExecutionPolicy, Quotes
from cmm_bt.data.schema import Instrument
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.hftbacktest_ref import ReferenceMM, engine_config
from cmm_bt.engine.kernel import Exchange
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.output import NOT_MEASURED
from cmm_bt.metrics import compute_metrics
from cmm_bt.engine.synthetic import synthetic_market


@njit(cache=True)
def _skewed_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, progress, signals, params):
    """Joins / improves / crosses by turns, skewed by the signal; no ask late in the episode."""
    k = int(signals[0])
    shift = k % 3 - 1
    ask = best_ask - shift if progress < 0.8 else NO_PRICE
    return best_bid + shift, params[0] + (k % 2), ask, params[0] * (1.0 + 0.5 * (position > 0))


class Skewed(ExecutionPolicy):
    """Python twin of :func:`_skewed_quote`."""

    name = "skewed"

    def quote(self, s):
        k = int(s.signals["k"])
        shift = k % 3 - 1
        ask = s.best_ask - shift if s.episode_progress < 0.8 else None
        return Quotes(s.best_bid + shift, 1.0 + (k % 2), ask, 1.0 * (1.0 + 0.5 * (s.position > 0)))

    def compiled(self):
        return _skewed_quote, np.array([1.0])


class PythonOnly(Skewed):
    def compiled(self):
        return None


def _same(a, b):
    pd.testing.assert_frame_equal(a.steps.drop(columns="decision_latency_ns"),
                                  b.steps.drop(columns="decision_latency_ns"), check_exact=True)
    pd.testing.assert_frame_equal(a.fills, b.fills, check_exact=True)
    pd.testing.assert_frame_equal(a.episodes, b.episodes, check_exact=True)
    assert a.counters == b.counters


@pytest.mark.parametrize("post_only,partial", [(True, False), (False, True)])
def test_compiled_equals_python_on_synthetic(post_only, partial, monkeypatch):
    monkeypatch.setattr(Exchange, "fill_capacity", 128)  # the fill log grows inside compiled episodes
    m = synthetic_market(40_000, seed=7)
    c = EngineConfig(queue_model="log-prob", post_only=post_only, partial_fills=partial, position_limit=6,
                     decision_interval_ms=5, episode_mode="fixed", episode_length_s=1.0, taker_fee=0.001)
    times, _ = decision_grid(m, c)
    sig = pd.DataFrame({"k": np.arange(times.size, dtype=float)})
    fast = run_backtest(m, Skewed(Skewed.Config()), c, signals=sig)
    slow = run_backtest(m, PythonOnly(Skewed.Config()), c, signals=sig)
    assert len(fast.fills) > 500
    assert fast.counters["taker_orders"] > 0 or post_only
    _same(fast, slow)
    assert (fast.steps.decision_latency_ns == NOT_MEASURED).all()
    assert (slow.steps.decision_latency_ns > 0).all()
    assert np.isnan(compute_metrics(fast, wall_s=1.0)["decision_latency_us_p50"])  # missing, not 0
    assert compute_metrics(slow, wall_s=1.0)["decision_latency_us_p50"] > 0


def test_hooks_force_the_python_path():
    m = synthetic_market(5_000, seed=2)
    times, _ = decision_grid(m, EngineConfig())
    sig = pd.DataFrame({"k": np.arange(times.size, dtype=float)})
    seen = []
    out = run_backtest(m, Skewed(Skewed.Config()), EngineConfig(), signals=sig, on_quote=lambda s, q: seen.append(q))
    assert len(seen) == len(out.steps) > 0


def test_reference_mm_compiled_equals_python_on_capture_slice(data_root):
    from cmm_bt_plugins.data.binance import BinanceCapture

    inst = Instrument("BTCUSDT", 0.1, 1.0, 0.001, "USDT")
    files = [Path(data_root) / "binance/usdm/btcusdt_20240808.gz"]
    full = BinanceCapture(BinanceCapture.Config()).load(files, inst, Path(data_root))
    m = full.between(full.start_ns, full.start_ns + 120 * 10**9)

    class Py(ReferenceMM):
        def compiled(self):
            return None

    cfg = engine_config()
    fast = run_backtest(m, ReferenceMM(ReferenceMM.Config()), cfg)
    slow = run_backtest(m, Py(ReferenceMM.Config()), cfg)
    assert len(fast.fills) > 20
    _same(fast, slow)
