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


@pytest.fixture(scope="module")
def usdm(data_root):
    """The usdm BTCUSDT capture of 2024-08-08 (345 s, 466,577 events)."""
    from cmm_bt_plugins.data.binance import BinanceCapture

    inst = Instrument("BTCUSDT", 0.1, 1.0, 0.001, "USDT")
    files = [Path(data_root) / "binance/usdm/btcusdt_20240808.gz"]
    return BinanceCapture(BinanceCapture.Config()).load(files, inst, Path(data_root))


def test_reference_mm_compiled_equals_python_on_capture_slice(usdm):
    full = usdm
    m = full.between(full.start_ns, full.start_ns + 120 * 10**9)

    class Py(ReferenceMM):
        def compiled(self):
            return None

    cfg = engine_config()
    fast = run_backtest(m, ReferenceMM(ReferenceMM.Config()), cfg)
    slow = run_backtest(m, Py(ReferenceMM.Config()), cfg)
    assert len(fast.fills) > 20
    _same(fast, slow)


# ------------------------------------------------------------------ the shipped classic policies
from cmm_bt.components import ExecutionPolicy as _Base, RunContext  # noqa: E402
from cmm_bt.errors import ConfigError  # noqa: E402
from cmm_bt_plugins.execution.avellaneda_stoikov import AvellanedaStoikov  # noqa: E402
from cmm_bt_plugins.execution.classic_price import SIGNALS, ClassicPrice  # noqa: E402
from cmm_bt_plugins.execution.fixed_spread import FixedSpread  # noqa: E402
from cmm_bt_plugins.execution.glft import GLFT  # noqa: E402


class PythonPath(_Base):
    """The same fitted policy through the Python path (``quote`` each step, no compiled function)."""

    name = "python-path"

    def __init__(self, inner):
        super().__init__(inner.config)
        self.inner = inner

    def quote(self, state):
        return self.inner.quote(state)


def _context(market, config, train=None, **extra):
    return RunContext(market.instrument, int(config.decision_interval_ms * 1_000_000), config.position_limit,
                      config.order_qty, train, extra=extra)


def _both(market, policy, config, **kw):
    """``(compiled run, Python run)`` of one fitted policy; checks the compiled path was really taken."""
    assert policy.compiled() is not None
    fast = run_backtest(market, policy, config, **kw)
    slow = run_backtest(market, PythonPath(policy), config, **kw)
    assert (fast.steps.decision_latency_ns == NOT_MEASURED).all()
    assert (slow.steps.decision_latency_ns > 0).all()
    return fast, slow


def _classic_signals(n: int, *, nan_head: int = 40, seed: int = 3) -> pd.DataFrame:
    """pred_mid / pred_spread / pred_volume with NaN before the first prediction and a few NaN holes
    later; pred_mid sometimes large enough to push a quote onto the post-only clamp."""
    rng = np.random.default_rng(seed)
    k = np.arange(n, dtype=float)
    sig = pd.DataFrame({
        "pred_mid": 2.5 * np.sin(k / 13.0) + rng.normal(0.0, 1.5, n),
        "pred_spread": 1.0 + 3.0 * np.abs(np.cos(k / 29.0)) + rng.normal(0.0, 0.3, n),
        "pred_volume": 2.0 + 2.5 * np.sin(k / 7.0) + rng.normal(0.0, 0.5, n),
    })
    sig.iloc[:nan_head] = np.nan
    for col in sig.columns:
        sig.loc[rng.random(n) < 0.03, col] = np.nan
    return sig


SYN_CONFIGS = {
    "post-only": dict(queue_model="log-prob", post_only=True, partial_fills=False, decision_interval_ms=5,
                      episode_mode="fixed", episode_length_s=1.0),
    "taking-partial": dict(queue_model="power-prob", post_only=False, partial_fills=True, decision_interval_ms=5,
                           episode_mode="fixed", episode_length_s=1.0, taker_fee=0.001),
}


def _synthetic_policies(context):
    out = {
        "fixed-spread": FixedSpread(FixedSpread.Config(half_spread_ticks=0.7, skew_ticks_per_unit=0.45, position_limit=2)),
        "fixed-behind": FixedSpread(FixedSpread.Config(half_spread_ticks=0.2, allow_inside_spread=False)),
        "as-episode": AvellanedaStoikov(AvellanedaStoikov.Config(gamma=0.3, sigma=1.3, k=0.8, position_limit=4)),
        "as-fixed": AvellanedaStoikov(AvellanedaStoikov.Config(gamma=0.05, sigma=2.0, k=1.5, horizon="fixed",
                                                               horizon_s=0.7)),
        "glft": GLFT(GLFT.Config(gamma=0.2, sigma=1.7, A=3.0, k=1.1, position_limit=2)),
        "glft-behind": GLFT(GLFT.Config(gamma=0.05, sigma=0.9, A=2.0, k=0.6, allow_inside_spread=False,
                                        spread_mult=0.5, skew_mult=2.0, position_limit=2)),
        "classic-price": ClassicPrice(ClassicPrice.Config(alpha=0.8, skew_ticks_per_unit=0.3, size_fraction=0.3,
                                                          max_qty=3.0)),
    }
    for p in out.values():
        p.fit(context)
    return out


SYN_POLICIES = ["fixed-spread", "fixed-behind", "as-episode", "as-fixed", "glft", "glft-behind", "classic-price"]


@pytest.fixture(scope="module")
def syn_market():
    return synthetic_market(30_000, seed=11)


@pytest.mark.parametrize("cfg", SYN_CONFIGS)
@pytest.mark.parametrize("kind", SYN_POLICIES)
def test_classic_policies_compiled_equal_python_on_synthetic(kind, cfg, syn_market, monkeypatch):
    monkeypatch.setattr(Exchange, "fill_capacity", 64)  # the fill log grows inside compiled episodes
    m = syn_market
    c = EngineConfig(position_limit=5, **SYN_CONFIGS[cfg])
    times, _ = decision_grid(m, c)
    policy = _synthetic_policies(_context(m, c, episode_length_s=1.0))[kind]
    sig = _classic_signals(times.size) if kind == "classic-price" else None
    fast, slow = _both(m, policy, c, signals=sig)
    assert len(fast.fills) > 100 and (fast.steps.position != 0).mean() > 0.1
    if kind != "as-fixed":  # the position limit drops a side now and then
        assert fast.steps.bid_quote.isna().any() or fast.steps.ask_quote.isna().any()
    _same(fast, slow)


def test_classic_price_signal_columns_from_the_context(syn_market):
    """Extra signal columns in another order: the policy finds its three by name (``signal_columns``)."""
    m = syn_market
    c = EngineConfig(**SYN_CONFIGS["post-only"], position_limit=5)
    times, _ = decision_grid(m, c)
    base = _classic_signals(times.size)
    rng = np.random.default_rng(0)
    sig = pd.DataFrame({"noise": rng.normal(size=times.size), "pred_volume": base.pred_volume,
                        "pred_mid": base.pred_mid, "other": rng.normal(size=times.size),
                        "pred_spread": base.pred_spread})
    policy = ClassicPrice(ClassicPrice.Config(alpha=0.8, size_fraction=0.3))
    policy.fit(_context(m, c, signal_columns=list(sig.columns)))
    fn, params = policy.compiled()
    fast, slow = _both(m, policy, c, signals=sig)
    assert len(fast.fills) > 100
    _same(fast, slow)
    # the same run with the three columns alone, in the default order, gives the same tables
    plain = ClassicPrice(ClassicPrice.Config(alpha=0.8, size_fraction=0.3))
    plain.fit(_context(m, c))
    _same(fast, run_backtest(m, plain, c, signals=sig[list(SIGNALS)]))


def test_classic_price_signal_columns_from_the_pipeline_product(syn_market):
    """Where the host hands the policy its pipeline products, the ``Signals`` frame tells the columns."""
    pipeline = pytest.importorskip("cmm_bt.pipeline")
    m = syn_market
    c = EngineConfig(**SYN_CONFIGS["post-only"], position_limit=5)
    times, _ = decision_grid(m, c)
    base = _classic_signals(times.size)
    sig = pd.DataFrame({"pred_spread": base.pred_spread, "x": 1.0, "pred_mid": base.pred_mid,
                        "pred_volume": base.pred_volume})
    policy = ClassicPrice(ClassicPrice.Config(alpha=0.8, size_fraction=0.3))
    ctx = _context(m, c)
    ctx.products = pipeline.Products({pipeline.Signals: pipeline.Signals(sig)})
    policy.fit(ctx)
    fast, slow = _both(m, policy, c, signals=sig)
    assert len(fast.fills) > 100
    _same(fast, slow)


def test_classic_price_compiled_path_refuses_unknown_or_missing_signals(syn_market):
    m = syn_market
    c = EngineConfig(**SYN_CONFIGS["post-only"])
    times, _ = decision_grid(m, c)
    base = _classic_signals(times.size)
    policy = ClassicPrice(ClassicPrice.Config())
    policy.fit(_context(m, c))  # not told the columns: exactly pred_mid, pred_spread, pred_volume expected
    with pytest.raises(ConfigError, match="not told their order"):
        run_backtest(m, policy, c, signals=base.assign(extra=0.0))
    with pytest.raises(ConfigError, match="needs the signals"):  # no model stage: both paths say so
        run_backtest(m, policy, c)
    with pytest.raises(ConfigError, match="needs the signals"):
        run_backtest(m, PythonPath(policy), c)
    told = ClassicPrice(ClassicPrice.Config())
    told.fit(_context(m, c, signal_columns=["pred_mid", "pred_spread"]))
    assert told.compiled() is None  # a signal is missing: the Python path raises the ConfigError
    with pytest.raises(ConfigError, match="pred_volume are missing"):
        run_backtest(m, told, c, signals=base[["pred_mid", "pred_spread"]])


def test_the_comparison_detects_a_compiled_policy_that_differs(syn_market):
    """The equality checks can fail: one tick of difference in the compiled half-spread shows up."""
    m = syn_market
    c = EngineConfig(**SYN_CONFIGS["post-only"], position_limit=5)
    policy = GLFT(GLFT.Config(gamma=0.2, sigma=1.7, A=3.0, k=1.1))
    policy.fit(_context(m, c))

    class Off(GLFT):
        def compiled(self):
            fn, p = super().compiled()
            p = p.copy()
            p[3] += 1.0  # GL_HALF
            return fn, p

    off = Off(policy.config)
    off.fit(_context(m, c))
    bad = run_backtest(m, off, c)
    with pytest.raises(AssertionError):
        _same(bad, run_backtest(m, PythonPath(off), c))


def test_python_quote_and_compiled_function_agree_state_by_state():
    """Direct check on many random states, including NaN signals, locked books and the position limit."""
    from cmm_bt.components import DecisionState
    from cmm_bt.data.schema import Instrument as Inst

    rng = np.random.default_rng(5)
    ctx = RunContext(Inst("X", 0.1, lot_size=0.5), 100_000_000, 3.0, 0.5, extra={"episode_length_s": 30.0})
    pols = [FixedSpread(FixedSpread.Config(half_spread_ticks=1.3, skew_ticks_per_unit=0.7)),
            AvellanedaStoikov(AvellanedaStoikov.Config(gamma=0.2, sigma=1.1, k=0.9)),
            GLFT(GLFT.Config(gamma=0.1, sigma=2.1, A=1.5, k=0.7, allow_inside_spread=False)),
            ClassicPrice(ClassicPrice.Config(alpha=1.2, size_fraction=0.2, skew_ticks_per_unit=0.4))]
    for p in pols:
        p.fit(ctx)
    for _ in range(3000):
        bid = int(rng.integers(990, 1010))
        ask = bid + int(rng.integers(-1, 5))
        vals = rng.normal([0.0, 2.0, 3.0], [4.0, 2.0, 3.0])
        vals[rng.random(3) < 0.2] = np.nan
        sig = dict(zip(SIGNALS, vals.tolist()))
        s = DecisionState(int(rng.integers(0, 10**12)), 0, bid, ask, float(rng.integers(1, 9)), 2.0,
                          float(rng.integers(-8, 9)) * 0.5, float(rng.random()), sig)
        for p in pols:
            fn, params = p.compiled()
            got = fn(s.ts, s.best_bid, s.best_ask, s.bid_qty, s.ask_qty, s.position, s.episode_progress,
                     vals if isinstance(p, ClassicPrice) else np.empty(0), params)
            q = p.quote(s)
            want = (NO_PRICE if q.bid_price is None else q.bid_price, q.bid_qty,
                    NO_PRICE if q.ask_price is None else q.ask_price, q.ask_qty)
            assert got == want, (p.name, s)


@pytest.fixture(scope="module")
def usdm_fitted(usdm):
    """Policies fitted (σ, A, k) on the capture's first 150 s; the replay is 150-300 s (the book is built
    from the start of the file)."""
    from cmm_bt.engine.hftbacktest_ref import engine_config

    s0 = usdm.start_ns
    cfg = engine_config()
    train = usdm.between(s0, s0 + 150 * 10**9)
    ctx = _context(usdm, cfg, train)
    pols = {
        "fixed-spread": FixedSpread(FixedSpread.Config(half_spread_ticks=3.0, skew_ticks_per_unit=100.0,
                                                       position_limit=0.03)),
        "avellaneda-stoikov": AvellanedaStoikov(AvellanedaStoikov.Config(gamma=1e-4, horizon="fixed", horizon_s=5.0,
                                                                          position_limit=0.03)),
        "glft": GLFT(GLFT.Config(gamma=0.05, position_limit=0.03)),
        "classic-price": ClassicPrice(ClassicPrice.Config(alpha=1.0, skew_ticks_per_unit=200.0, size_fraction=0.004,
                                                          position_limit=0.05)),
    }
    for p in pols.values():
        p.fit(ctx)
    return cfg, (s0 + 150 * 10**9, s0 + 300 * 10**9), pols


@pytest.mark.parametrize("kind", ["fixed-spread", "avellaneda-stoikov", "glft", "classic-price"])
def test_classic_policies_compiled_equal_python_on_capture_slice(kind, usdm, usdm_fitted):
    cfg, (a, b), pols = usdm_fitted
    policy = pols[kind]
    if kind in ("avellaneda-stoikov", "glft"):
        assert policy.sigma > 0 and policy.k > 0  # estimated from the training slice
    sig = None
    if kind == "classic-price":
        times, _ = decision_grid(usdm, cfg, a, b)
        sig = _classic_signals(times.size, nan_head=200)
        sig["pred_mid"] *= 10.0
        sig["pred_spread"] *= 10.0
    fast, slow = _both(usdm, policy, cfg, signals=sig, start_ns=a, end_ns=b)
    assert len(fast.fills) >= 10
    _same(fast, slow)
