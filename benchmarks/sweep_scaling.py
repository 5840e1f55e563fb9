"""Wall time of one 16-trial sweep of a classic market maker on 1 worker, 2 local workers and Ray with 2 CPUs.

    python benchmarks/sweep_scaling.py [--dataset cffex-if] [--strategy strategies/avellaneda-stoikov.yaml]
                                       [--split all] [--interval-ms 50]

The same 4 x 4 grid (``gamma`` x ``horizon_s`` for A-S) runs three times through the library API
(:func:`cmm_bt.sweep.run_sweep`) in this process, each into a fresh folder so that nothing is reused:
``--executor local --workers 1``, ``--executor local --workers 2`` and ``--executor ray --workers 2``
on a local Ray instance with 2 CPUs started just before, as a cluster would be running already; the
time to start it is printed apart).  The data cache is warmed first, so every sweep starts from the
same state.  Each time is the whole sweep as a user waits for it: validation, the executor (worker
processes are started; Ray is connected to), the trials (workers import the project and load
numba's cache in their first trial), the result files and shutdown.  The table also shows the
executor start and the trial phase alone.  The trials of the three
sweeps must give identical metrics (checked).  The last line is
``trials=16 serial_s=<a> local2_s=<b> ray2_s=<c> local_speedup=<a/b> ray_speedup=<a/c>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = {"wall_s", "run_wall_s", "events_per_s", "decisions_per_s", "decision_latency_us_p50", "decision_latency_us_p99"}
GRIDS = {
    "avellaneda-stoikov": ["execution.params.gamma=0.01,0.05,0.2,1", "execution.params.horizon_s=15,60,240,960"],
    "glft": ["execution.params.gamma=0.005,0.02,0.1,0.5", "engine.order_qty=1,2,3,4"],
    "fixed-spread": ["execution.params.half_spread_ticks=1,2,3,4", "execution.params.skew_ticks_per_unit=0,0.1,0.2,0.5"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cffex-if")
    ap.add_argument("--strategy", default=str(ROOT / "strategies" / "avellaneda-stoikov.yaml"))
    ap.add_argument("--split", default="all", help="split every trial replays (default: all eight days)")
    ap.add_argument("--interval-ms", type=float, default=50.0, help="engine.decision_interval_ms of every trial")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    from rich.console import Console

    from cmm_bt.api import Session, prepare_run
    from cmm_bt.sweep import SweepSpec, run_sweep

    strategy = Path(args.strategy)
    grid = GRIDS[strategy.stem]
    quiet = Console(quiet=True)
    session = Session.start(console=quiet)
    overrides = [f"engine.decision_interval_ms={args.interval_ms:g}"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CMM_BT_CACHE_DIR", str(Path(tmp) / "cache"))
        prepare_run(session, strategy, overrides=[*overrides, f"split={args.split}"], dataset=args.dataset, data_root=args.data_root)
        runs = {}
        ray_start_s = None
        for label, executor, workers in (("serial", "local", 1), ("local2", "local", 2), ("ray2", "ray", 2)):
            spec = SweepSpec(strategy=strategy, out=Path(tmp) / label, params=grid, dataset=args.dataset, split=args.split,
                             executor=executor, workers=workers, overrides=overrides, data_root=args.data_root)
            boot = None
            if executor == "ray":  # a running 2-CPU instance (as a cluster would be); its start is timed apart
                from cmm_bt.executors.ray_executor import RayExecutor

                t0 = time.perf_counter()
                boot = RayExecutor(workers)
                ray_start_s = time.perf_counter() - t0
            try:
                res = run_sweep(session, spec, console=quiet)
            finally:
                if boot is not None:
                    boot.close()
            failed = [r for r in res.records if r.status != "ok"]
            if failed:
                sys.exit(f"{label}: {len(failed)} trials failed, first: {failed[0].error}")
            runs[label] = res
            print(f"{label:<8} total {res.timing['total_s']:6.1f} s", flush=True)
    base = runs["serial"].records
    for label, res in runs.items():
        for a, b in zip(base, res.records):
            diff = sorted(k for k in set(a.metrics) | set(b.metrics) if k not in TIMINGS and a.metrics.get(k) != b.metrics.get(k)
                          and not (a.metrics.get(k) != a.metrics.get(k) and b.metrics.get(k) != b.metrics.get(k)))  # NaN == NaN
            if diff:
                sys.exit(f"{label}: trial {b.name} differs from the serial run in {', '.join(diff)}")
    n = len(base)
    print(f"\n{strategy.stem} on {args.dataset} ({args.split} split, decision every {args.interval_ms:g} ms), {n} trials, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'run':<8}{'workers':>8}{'start s':>10}{'trials s':>10}{'total s':>10}{'s/trial':>10}")
    for label, res in runs.items():
        t = res.timing
        print(f"{label:<8}{(1 if label == 'serial' else 2):>8}{t['executor_start_s']:>10.1f}{t['trials_s']:>10.1f}{t['total_s']:>10.1f}"
              f"{t['trials_s'] / n:>10.2f}")
    print(f"starting the local Ray instance (2 CPUs) took {ray_start_s:.1f} s more, not in ray2_s "
          f"(with it: ray2 {runs['ray2'].timing['total_s'] + ray_start_s:.1f} s)")
    a, b, c = (runs[k].timing["total_s"] for k in ("serial", "local2", "ray2"))
    print(f"trials={n} serial_s={a:.1f} local2_s={b:.1f} ray2_s={c:.1f} local_speedup={a / b:.2f} ray_speedup={a / c:.2f}")


if __name__ == "__main__":
    main()
