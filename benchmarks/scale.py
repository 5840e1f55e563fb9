"""Memory against dataset size: peak RSS, events and events/s of a fixed-spread replay of N sessions.

    python benchmarks/scale.py                       # 1, 4, 16, 64 one-hour synthetic sessions
    python benchmarks/scale.py --sessions 1 4        # chosen sizes
    python benchmarks/scale.py --days 30             # 30 sessions of 24 h (after the hourly sizes)
    python benchmarks/scale.py --days 30 --sessions  # only the 30-day run

Each size is a synthetic manifest (datasets/synthetic.yaml with ``sessions`` / ``session_seconds``
changed, no splits) replayed by ``cmm-bt run strategies/fixed-spread.yaml -o split=all
-o reporters=[]`` in a fresh child process; the peak RSS is the child's ``ru_maxrss``
(``os.wait4``), so generation, normalisation, replay, metrics and the run folder all count.
``events`` and the replay wall time come from the run folder's ``run.json``.  The marginal bytes
per event are ``(rss(64) - rss(4)) / (events(64) - events(4))`` (the two sizes nearest to these
that ran).  The last line describes the largest run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cmm_bt.hostinfo import describe_host

ROOT = Path(__file__).resolve().parents[1]


def manifest(path: Path, sessions: int, session_seconds: float, gap_seconds: float) -> Path:
    """The embedded synthetic manifest with ``sessions`` sessions of ``session_seconds``, no splits."""
    spec = yaml.safe_load((ROOT / "datasets" / "synthetic.yaml").read_text())
    spec.pop("split", None)
    spec["name"] = f"synthetic-{sessions}x{int(session_seconds)}s"
    spec["params"].update(sessions=sessions, session_seconds=session_seconds, gap_seconds=gap_seconds)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_one(work: Path, sessions: int, session_seconds: float, gap_seconds: float, strategy: str) -> dict:
    """Replay one size in a child process; its peak RSS, events, replay and total wall time."""
    tag = f"{sessions}x{int(session_seconds)}"
    data = manifest(work / f"{tag}.yaml", sessions, session_seconds, gap_seconds)
    out = work / f"run-{tag}"
    cmd = [str(Path(sys.executable).with_name("cmm-bt")), "run", strategy, "-d", str(data), "-o", "split=all",
           "-o", "reporters=[]", "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    err = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scale: {tag} failed (exit {os.waitstatus_to_exitcode(status)}): {err.strip()[-2000:]}")
    info = json.loads((out / "run.json").read_text())
    events = int(info["counters"]["events"])
    rss_mib = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return {"sessions": sessions, "session_s": session_seconds, "events": events, "peak_rss_mib": rss_mib,
            "replay_wall_s": float(info["wall_s"]), "total_wall_s": wall,
            "events_per_s": events / max(float(info["wall_s"]), 1e-9)}


def marginal(rows: list[dict]) -> float:
    """Bytes of peak RSS per extra event between the hourly sizes nearest 4 and 64 sessions."""
    hourly = sorted((r for r in rows if r["session_s"] == 3600.0), key=lambda r: r["events"])
    if len(hourly) < 2:
        return float("nan")
    lo = min(hourly, key=lambda r: abs(r["sessions"] - 4))
    hi = min(hourly, key=lambda r: abs(r["sessions"] - 64))
    if hi["events"] <= lo["events"]:
        return float("nan")
    return (hi["peak_rss_mib"] - lo["peak_rss_mib"]) * 2**20 / (hi["events"] - lo["events"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, nargs="*", default=[1, 4, 16, 64], help="hourly sizes to run")
    ap.add_argument("--days", type=int, default=0, help="also run this many 24-hour sessions")
    ap.add_argument("--strategy", default="strategies/fixed-spread.yaml")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)
    sizes = [(n, 3600.0, 1800.0) for n in args.sessions] + ([(args.days, 86400.0, 0.0)] if args.days else [])
    if not sizes:
        ap.error("nothing to run: give --sessions and/or --days")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cmm-bt-scale-") as tmp:
        print(f"{'sessions':>8} {'session_s':>9} {'events':>10} {'peak_rss_mib':>12} {'events/s':>11} "
              f"{'replay_s':>8} {'total_s':>8}", flush=True)
        for n, length, gap in sizes:
            r = run_one(Path(tmp), n, length, gap, args.strategy)
            rows.append(r)
            print(f"{r['sessions']:>8} {r['session_s']:>9.0f} {r['events']:>10} {r['peak_rss_mib']:>12.1f} "
                  f"{r['events_per_s']:>11.0f} {r['replay_wall_s']:>8.2f} {r['total_wall_s']:>8.1f}", flush=True)
    b = marginal(rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "marginal_bytes_per_event": b}, indent=2))
    big = max(rows, key=lambda r: r["events"])
    print(f"sessions={big['sessions']} events={big['events']} peak_rss_mib={big['peak_rss_mib']:.1f} "
          f"events_per_s={big['events_per_s']:.0f} marginal_bytes_per_event={b:.1f}")


if __name__ == "__main__":
    main()
