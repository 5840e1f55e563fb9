"""A shipped policy through the Python path and through its compiled quoting function, in one run.

    CMM_BT_DATA_ROOT=../shared/datasets python benchmarks/compiled_policies.py            # glft, full cme-gc day
    python benchmarks/compiled_policies.py --strategy avellaneda-stoikov --repeat 3

The dataset comes from its manifest and the data root (``--data-root``, else ``CMM_BT_DATA_ROOT``,
else ``datasets/``).  The policy (params and engine section of ``strategies/<strategy>.yaml``,
decision interval ``--interval-ms``) is fitted on the dataset's training split (σ, A, k for GLFT
and Avellaneda–Stoikov) and replays the *whole* dataset twice per round: once with ``quote``
called from Python at every decision step (``compiled()`` hidden), once with the policy's numba
function inside the engine's compiled episode loop.  One untimed warm-up run of each path on the
first minute loads (or fills) numba's on-disk cache.  Times are ``run_backtest`` wall times
(preparation, replay, output tables), medians over ``--repeat`` rounds (the two paths
alternate).  ``identical`` compares every output table (steps without ``decision_latency_ns``,
fills, episodes) and the counters of the two runs, exactly.

Last line::

    strategy=glft dataset=cme-gc steps=<n> python_s=<a> compiled_s=<b> speedup=<a/b> identical=<true|false>

Exit code 1 when the two paths differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

from cmm_bt.components import ExecutionPolicy, RunContext
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import run_backtest
from cmm_bt.hostinfo import describe_host

ROOT = Path(__file__).resolve().parent.parent


class PythonPath(ExecutionPolicy):
    """The same fitted policy, without its compiled function: the engine calls ``quote`` every step."""

    name = "python-path"

    def __init__(self, inner: ExecutionPolicy):
        super().__init__(inner.config)
        self.quote = inner.quote  # the bound method itself: no extra call per step


def identical(a, b) -> bool:
    """Every output table and counter of two runs equal, exactly (decision latency excluded)."""
    drop = ["decision_latency_ns"]
    return (a.steps.drop(columns=drop).equals(b.steps.drop(columns=drop)) and a.fills.equals(b.fills)
            and a.episodes.equals(b.episodes) and a.counters == b.counters)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default="glft", help="strategies/NAME.yaml (default glft)")
    ap.add_argument("--dataset", default="cme-gc", help="dataset manifest (default cme-gc)")
    ap.add_argument("--data-root", default=None, help="data root (default: CMM_BT_DATA_ROOT, else datasets/)")
    ap.add_argument("--interval-ms", type=float, default=100.0, help="decision interval (default 100)")
    ap.add_argument("--repeat", type=int, default=1, help="timed rounds (each: one Python and one compiled run)")
    a = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)

    from cmm_bt.data.loading import load_market
    from cmm_bt.data.manifest import compute_splits, load_manifest, resolve_data_root
    from cmm_bt.plugins import Hooks, build_plugin_manager

    strategy = yaml.safe_load((ROOT / "strategies" / f"{a.strategy}.yaml").read_text())
    registry = Hooks(build_plugin_manager()).build_registry()
    t = time.perf_counter()
    manifest = load_manifest(a.dataset)
    market = load_market(manifest, resolve_data_root(a.data_root), registry)
    print(f"loaded {a.dataset}: {len(market.events):,} events in {time.perf_counter() - t:.1f} s (not timed)")

    engine = EngineConfig(**{**dict(manifest.engine_defaults), **strategy.get("engine", {}),
                             "decision_interval_ms": a.interval_ms})
    spec = strategy["execution"]
    policy = registry.create("execution", spec["name"], spec.get("params", {}))
    train = market.between(*compute_splits(manifest, market.start_ns, market.end_ns)["train"])
    t = time.perf_counter()
    policy.fit(RunContext(market.instrument, int(engine.decision_interval_ms * 1_000_000), engine.position_limit,
                          engine.order_qty, train))
    fitted = getattr(policy, "fitted", {})
    print(f"fitted {spec['name']} on the training split in {time.perf_counter() - t:.1f} s: "
          + ", ".join(f"{k}={v:.4g}" for k, v in fitted.items() if v is not None))
    if policy.compiled() is None:
        print(f"{spec['name']} has no compiled quoting function", file=sys.stderr)
        return 2
    python = PythonPath(policy)

    t = time.perf_counter()
    head = market.between(market.start_ns, market.start_ns + 60 * 10**9)
    run_backtest(head, policy, engine), run_backtest(head, python, engine)
    print(f"warm-up (numba cache) {time.perf_counter() - t:.1f} s (not timed)")

    py_s, nb_s, same = [], [], True
    for _ in range(a.repeat):
        slow = run_backtest(market, python, engine)
        fast = run_backtest(market, policy, engine)
        py_s.append(slow.wall_s)
        nb_s.append(fast.wall_s)
        same = same and identical(slow, fast)
    steps = len(fast.steps)
    a_s, b_s = statistics.median(py_s), statistics.median(nb_s)
    pnl = float(fast.episodes.pnl.sum())
    print(f"engine            {engine.decision_interval_ms:g} ms decisions, {engine.queue_model}, "
          f"episodes {engine.episode_mode} ({len(fast.episodes)}), fees {engine.maker_fee:g} / {engine.taker_fee:g}")
    print(f"decision steps    {steps:,}   fills {len(fast.fills):,}   PnL {pnl:,.2f} {market.instrument.currency}")
    print(f"python path       {a_s:.3f} s  ({a_s / steps * 1e6:.2f} us per step; runs: "
          + ", ".join(f"{x:.3f}" for x in py_s) + ")")
    print(f"compiled path     {b_s:.3f} s  ({b_s / steps * 1e6:.2f} us per step; runs: "
          + ", ".join(f"{x:.3f}" for x in nb_s) + ")")
    print(f"strategy={a.strategy} dataset={a.dataset} steps={steps} python_s={a_s:.3f} compiled_s={b_s:.3f} "
          f"speedup={a_s / b_s:.2f} identical={'true' if same else 'false'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
