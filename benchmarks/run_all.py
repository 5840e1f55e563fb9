"""Run the quick benchmarks one after another (``make bench``); each prints its own ratios."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["replay_speed.py"],
    ["replay_speed.py", "--dataset", "cme-gc"],
    ["scale.py"],  # peak RSS vs dataset size (1-64 one-hour sessions); --days 30 by hand (~7 GiB, 2 min)
    ["compiled_policies.py"],
    ["engine_vs_hftbacktest.py", "--data", str(Path(os.environ.get("CMM_BT_DATA_ROOT", "datasets")) / "binance/usdm/btcusdt_20240808.gz")],
    ["cmm_latency.py"],
    ["rl_env.py"],
    ["cached_run.py", "strategies/llm-teacher.yaml"],
]

if __name__ == "__main__":
    failed = 0
    for bench in BENCHES:
        print(f"\n=== {' '.join(bench)}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / bench[0]), *bench[1:]]).returncode != 0
    sys.exit(1 if failed else 0)
