"""Replay speed of the engine: events/s, decisions/s and peak memory, against a pure-numpy pass.

    python benchmarks/replay_speed.py                       # synthetic table, 1M events
    python benchmarks/replay_speed.py --events 200000 --interval-ms 10
    python benchmarks/replay_speed.py --events-parquet FILE --tick-size 0.1
    python benchmarks/replay_speed.py --dataset cme-gc --repeat 1  # a dataset manifest + the data root

``--events-parquet`` reads a table with the columns of ``cmm_bt.data.schema.EVENT_COLUMNS``.
The first (warm-up) run compiles / loads the numba cache and is not timed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd

from cmm_bt.components import ExecutionPolicy, Quotes
from cmm_bt.data.schema import EVENT_COLUMNS, TRADE, Instrument, MarketData, sort_events
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid, run_backtest
from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt.hostinfo import describe_host


class JoinTouch(ExecutionPolicy):
    """Trivial policy: one lot on each side at the local best bid / ask."""

    name = "join-touch"

    def quote(self, state):
        return Quotes(state.best_bid, 1.0, state.best_ask, 1.0)


def numpy_pass(events: pd.DataFrame, grid: np.ndarray) -> float:
    """Reference: one vectorised pass over the same columns (trade-flow cumsum, per-side last update,
    sampling at the decision grid).  A floor for 'touching every event once' in numpy."""
    ts = events["exch_ts"].to_numpy()
    ev = events["ev"].to_numpy()
    side = events["side"].to_numpy()
    px = events["price"].to_numpy()
    qty = events["qty"].to_numpy()
    is_trade = ev == TRADE
    flow = np.cumsum(np.where(is_trade, side * qty, 0.0))
    idx = np.arange(ts.size)
    last_bid = np.maximum.accumulate(np.where((~is_trade) & (side == 1), idx, 0))
    last_ask = np.maximum.accumulate(np.where((~is_trade) & (side == -1), idx, 0))
    k = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, ts.size - 1)
    return float(flow[k].sum() + px[last_bid[k]].sum() - px[last_ask[k]].sum())


def peak_rss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="dataset manifest name (datasets/NAME.yaml), resolved against the data root")
    ap.add_argument("--data-root", default=None, help="data root (default: CMM_BT_DATA_ROOT, else datasets/)")
    ap.add_argument("--events-parquet", help="event table (EVENT_COLUMNS) to replay instead of synthetic data")
    ap.add_argument("--tick-size", type=float, default=0.01, help="tick size of the parquet table's instrument")
    ap.add_argument("--multiplier", type=float, default=1.0)
    ap.add_argument("--lot-size", type=float, default=1.0)
    ap.add_argument("--events", type=int, default=1_000_000, help="synthetic events")
    ap.add_argument("--interval-ms", type=float, default=100.0, help="decision interval")
    ap.add_argument("--queue-model", default="power-prob")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    a = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)

    rss0 = peak_rss_mib()
    if a.dataset:
        from cmm_bt.data.loading import load_market
        from cmm_bt.data.manifest import load_manifest, resolve_data_root
        from cmm_bt.plugins import Hooks, build_plugin_manager

        t = time.perf_counter()
        manifest = load_manifest(a.dataset)
        market = load_market(manifest, resolve_data_root(a.data_root), Hooks(build_plugin_manager()).build_registry())
        print(f"loaded {a.dataset} in {time.perf_counter() - t:.1f} s (not timed; cached after the first load)")
        source = a.dataset
        rss0 = peak_rss_mib()
    elif a.events_parquet:
        ev = pd.read_parquet(a.events_parquet, columns=list(EVENT_COLUMNS)).astype(EVENT_COLUMNS)
        market = MarketData(sort_events(ev), Instrument("BENCH", a.tick_size, a.multiplier, a.lot_size))
        source = a.events_parquet
    else:
        market = synthetic_market(a.events, seed=1, mean_gap_us=100.0)
        source = f"synthetic({a.events})"
    n = len(market.events)
    cfg = EngineConfig(decision_interval_ms=a.interval_ms, queue_model=a.queue_model)
    policy = JoinTouch(JoinTouch.Config())

    t = time.perf_counter()
    run_backtest(market.between(market.start_ns, market.start_ns + 10**9), policy, cfg)  # compile / load cache
    warm = time.perf_counter() - t

    best = None
    for _ in range(a.repeat):
        out = run_backtest(market, policy, cfg)
        best = out if best is None or out.wall_s < best.wall_s else best
    rss1 = peak_rss_mib()

    grid, _ = decision_grid(market, cfg)
    ref = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        numpy_pass(market.events, grid)
        ref.append(time.perf_counter() - t)
    ref_s = min(ref)

    steps = len(best.steps)
    lat = best.steps.decision_latency_ns
    print(f"source            {source}")
    print(f"events            {n:,}   decision steps {steps:,}   fills {len(best.fills):,}")
    print(f"warm-up (compile) {warm:.2f} s")
    print(f"engine wall       {best.wall_s:.3f} s  -> {n / best.wall_s:,.0f} events/s, {steps / best.wall_s:,.0f} decisions/s")
    print(f"policy latency    p50 {np.percentile(lat, 50) / 1e3:.1f} us, p99 {np.percentile(lat, 99) / 1e3:.1f} us")
    print(f"numpy pass        {ref_s:.3f} s  -> {n / ref_s:,.0f} events/s")
    print(f"ratio engine/numpy wall time  {best.wall_s / ref_s:.1f}x")
    print(f"peak RSS          {rss1:,.0f} MiB (before the replays {rss0:,.0f} MiB)")
    print(f"counters          {best.counters}")


if __name__ == "__main__":
    main()
