"""Fidelity and speed of the cmm-bt engine against hftbacktest 2.4 on a Binance capture.

    python benchmarks/engine_vs_hftbacktest.py --data ../shared/datasets/binance/usdm/btcusdt_20240808.gz
    python benchmarks/engine_vs_hftbacktest.py --data .../spot/btcusdt_20240808.gz .../spot/btcusdt_20240809.gz
    python benchmarks/engine_vs_hftbacktest.py --data FILE --replay-only

Both engines get the capture through their own converter (ours: the ``binance`` data plugin; theirs:
``hftbacktest.data.utils.binancefutures.convert``), then run the strategy of
:mod:`cmm_bt.engine.hftbacktest_ref` (or, with ``--replay-only``, no orders) ``--repeat`` times each,
alternating (ours compiled, ours Python, hbt, ...), after one untimed warm-up run each (numba
compilation).  Timed: ours = ``run_backtest`` wall (``BacktestOutput.wall_s``: preparation, both books,
the loop, building the output tables); hbt = building the backtest from the in-memory array + the
jitted run.  Loading and conversion are not timed.  Medians are reported.  Our decision grid is put on
hftbacktest's phase (:func:`~cmm_bt.engine.hftbacktest_ref.aligned_start`; ``--own-grid`` keeps ours).

Ours runs twice: with the policy's compiled quoting function (``ExecutionPolicy.compiled``: the whole
episode inside numba, like hftbacktest's jitted strategy: the like-for-like headline) and with the
same policy in Python (one Python call per decision step: its row shows that overhead).

``events`` is the number of rows of hftbacktest's converted array (the issue's 491,973 for the usdm
BTCUSDT file) and both rates divide that same number by each engine's wall time, so ``ratio`` is
hbt wall / our wall.  The last line (compiled policy) is machine-readable; the line before it gives
the Python policy's ratio and the Python path's own cost per step (its median wall minus the compiled
run's, less the timed policy calls, per decision step) the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from numba import njit

from cmm_bt.components import NO_PRICE, Quotes
from cmm_bt.data.schema import Instrument
from cmm_bt.engine.hftbacktest_ref import (
    MMSpec,
    ReferenceMM,
    aligned_start,
    engine_config,
    hbt_events_from_binance,
    run_hbt,
)
from cmm_bt.engine.loop import run_backtest
from cmm_bt.hostinfo import describe_host
from cmm_bt_plugins.data.binance import KNOWN_TICKS, BinanceCapture, coin_m_instrument

#: lot sizes of the dataset manifests (datasets/binance-*.yaml)
LOTS = {("usdm", "BTCUSDT"): 0.001, ("usdm", "ETHUSDT"): 0.001, ("spot", "BTCUSDT"): 0.00001,
        ("cm", "BTCUSD_PERP"): 1.0}
#: the reference market maker on an inverse contract: 1 contract a side (100 USD for BTCUSD_PERP; 0.01 BTC on
#: the linear captures is ~600 USD), one tick of skew per contract held, at most 10 contracts
INVERSE_SPEC = MMSpec(order_qty=1.0, skew_unit=1.0, max_position=10.0)


@njit(cache=True)
def no_quotes(ts, best_bid, best_ask, bid_qty, ask_qty, position, progress, signals, params):
    return NO_PRICE, 0.0, NO_PRICE, 0.0


class Silent(ReferenceMM):
    """Replay-only twin: never quotes (the decision loop still runs once per step)."""

    name = "silent"

    def quote(self, state):
        return Quotes()

    def compiled(self):
        return no_quotes, np.zeros(0)


def python_only(policy: ReferenceMM) -> ReferenceMM:
    """The same policy without its compiled quoting function (the engine calls ``quote`` every step)."""

    class PythonOnly(type(policy)):
        def compiled(self):
            return None

    return PythonOnly(policy.config)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="Binance capture file(s); a contiguous pair is joined")
    ap.add_argument("--replay-only", action="store_true", help="no orders: replay and the decision loop only")
    ap.add_argument("--own-grid", action="store_true",
                    help="keep our decision grid's own phase (default: aligned on hftbacktest's, see aligned_start)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per engine (medians reported)")
    ap.add_argument("--cache-dir", default=None, help="cache hftbacktest's converted array here")
    ap.add_argument("--tick-size", type=float, default=None, help="price tick, for a symbol the binance plugin does not know")
    ap.add_argument("--lot-size", type=float, default=None, help="order/lot size (default: the dataset manifests' lot, else 1)")
    ap.add_argument("--contract-size", type=float, default=None,
                    help="inverse (coin-margined) contract value in USD; default for COIN-M captures: the binance "
                         "plugin's KNOWN_CONTRACT_SIZES (BTCUSD_PERP 100); given for another capture, it is run as inverse")
    a = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)
    files = [Path(f) for f in a.data]

    t = time.perf_counter()
    ours_src = BinanceCapture(BinanceCapture.Config())
    probe = ours_src.load(files, None, files[0].parent) if a.tick_size is None else None
    key = (probe.meta["market"], probe.meta["symbol"]) if probe is not None else None
    if a.tick_size is None and key not in KNOWN_TICKS:
        raise SystemExit(f"error: no known tick size for {key}: pass --tick-size")
    tick = a.tick_size if a.tick_size is not None else KNOWN_TICKS[key]
    symbol, lot = key[1] if key else files[0].name, a.lot_size or LOTS.get(key, 1.0)
    if a.contract_size is not None or (key and key[0] == "cm"):
        inst = replace(coin_m_instrument(symbol, tick, a.contract_size), lot_size=lot)
        spec = INVERSE_SPEC  # sizes in contracts
    else:
        inst, spec = Instrument(symbol, tick, 1.0, lot, "USDT"), MMSpec()
    market = ours_src.load(files, inst, files[0].parent)
    load_ours = time.perf_counter() - t
    t = time.perf_counter()
    data = hbt_events_from_binance(files, a.cache_dir)
    load_hbt = time.perf_counter() - t
    n = len(data)

    cfg = engine_config(spec)
    policy = Silent(Silent.Config()) if a.replay_only else ReferenceMM.from_spec(spec)
    py_policy = python_only(policy)

    def hbt():
        return run_hbt(data, inst.tick_size, inst.lot_size, spec, replay_only=a.replay_only,
                       contract_size=inst.multiplier if inst.inverse else None)

    t = time.perf_counter()
    start = None if a.own_grid else aligned_start(market, data, spec.interval_ns)

    def ours(pol):
        return run_backtest(market, pol, cfg, start_ns=start)

    o, p, h = ours(policy), ours(py_policy), hbt()  # warm-up
    warm = time.perf_counter() - t
    w_o, w_p, w_h = [], [], []
    for _ in range(a.repeat):
        o = ours(policy)
        w_o.append(o.wall_s)
        p = ours(py_policy)
        w_p.append(p.wall_s)
        h = hbt()
        w_h.append(h.wall_s)
    if not (o.fills.equals(p.fills) and o.counters == p.counters):
        raise SystemExit("compiled and Python policy runs differ")
    mo, mp, mh = statistics.median(w_o), statistics.median(w_p), statistics.median(w_h)
    steps = len(o.steps)
    fills_o = len(o.fills)
    pnl_o = float(o.steps.equity.iloc[-1]) if steps else 0.0
    lat = p.steps.decision_latency_ns.to_numpy()
    x, y = n / mo, n / mh
    pf = ".8f" if inst.inverse else ".4f"  # PnL in the coin (inverse) or in USDT

    print(f"data          {' + '.join(str(f) for f in files)}")
    print(f"mode          {'replay only (no orders)' if a.replay_only else 'market maker, 100 ms re-quote'}, "
          f"{inst.describe()}")
    print(f"load/convert  ours {load_ours:.2f} s ({len(market.events):,} events)   "
          f"hbt {load_hbt:.2f} s ({n:,} events)   warm-up {warm:.2f} s   (not timed)")
    print(f"{'engine':<20}{'median wall':>12}{'min wall':>10}{'events/s':>14}{'ratio':>7}{'steps':>8}"
          f"{'decisions/s':>12}{'fills':>7}{'pnl':>12}")
    for name, m, w, nsteps, fills, pnl in [
        ("cmm-bt compiled", mo, w_o, steps, fills_o, pnl_o),
        ("cmm-bt Python", mp, w_p, steps, fills_o, pnl_o),
        ("hftbacktest", mh, w_h, h.steps, h.fills, h.pnl),
    ]:
        print(f"{name:<20}{m:>11.4f}s{min(w):>9.4f}s{n / m:>14,.0f}{mh / m:>7.3f}{nsteps:>8}{nsteps / m:>12,.0f}"
              f"{fills:>7}{pnl:>12{pf}}")
    if steps:
        # the Python path's own cost per step: its wall minus the compiled run's, less the policy calls
        overhead = ((mp - mo) * 1e9 - float(lat.sum())) / steps / 1e3
        print(f"cmm-bt Python policy: call per step p50 {float(sorted(lat)[len(lat) // 2]) / 1e3:.1f} us, "
              f"decisions/s {steps / mp:,.0f}, ratio {mh / mp:.3f}, engine overhead per step {overhead:.2f} us "
              f"((Python wall - compiled wall) / steps - policy call)")
        print(f"python_ratio={mh / mp:.3f} python_overhead_us_per_step={overhead:.2f} compiled_ratio={mh / mo:.3f}")
    print(f"events={n} ours_events_per_s={x:.0f} hbt_events_per_s={y:.0f} ratio={x / y:.3f} "
          f"fills_ours={fills_o} fills_hbt={h.fills} pnl_ours={pnl_o:{pf}} pnl_hbt={h.pnl:{pf}}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
