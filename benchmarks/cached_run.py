"""Wall time of a strategy run with an empty stage cache versus a second run that reuses it.

    python benchmarks/cached_run.py strategies/llm-teacher.yaml [-o key=value ...]

Both runs go through the real CLI (``python -m cmm_bt run``) in fresh processes, with
``CMM_BT_CACHE_DIR`` pointing at a new temporary folder (the converted teacher weights in
``CMM_BT_MODEL_CACHE`` are kept, so the first run measures feature extraction, not conversion).
The last line is ``first_s=<a> cached_s=<b> speedup=<a/b>``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(strategy: str, overrides: list[str], env: dict[str, str], out: Path) -> float:
    cmd = [sys.executable, "-m", "cmm_bt", "run", strategy, "--out", str(out)]
    for o in overrides:
        cmd += ["-o", o]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"run failed ({res.returncode}): {res.stderr.strip()}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("strategy")
    ap.add_argument("-o", "--override", action="append", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CMM_BT_CACHE_DIR=str(Path(tmp) / "cache"))
        first = timed_run(args.strategy, args.override, env, Path(tmp) / "run1")
        cached = timed_run(args.strategy, args.override, env, Path(tmp) / "run2")
    print(f"{'run':<8}{'wall s':>10}")
    print(f"{'first':<8}{first:>10.1f}")
    print(f"{'cached':<8}{cached:>10.1f}")
    print(f"first_s={first:.1f} cached_s={cached:.1f} speedup={first / cached:.1f}")


if __name__ == "__main__":
    main()
