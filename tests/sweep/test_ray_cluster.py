"""A real local Ray cluster (``ray start --head`` on the loopback interface, 2 CPUs): ``cmm-bt sweep
--ray-address`` runs a small sweep on it, including a trial whose worker is killed and retried."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# ray is not imported here: the executor sets Ray's loopback mode before the first import
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the ray extra is not installed (make test installs it)")

BIN = Path(sys.executable).parent
PLUGINS = Path(__file__).resolve().parent / "plugins"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_ray_cluster_by_address(flaky_strategy, tmp_path, data_root):
    ray = shutil.which("ray", path=str(BIN)) or "ray"
    port = _free_port()
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # Ray's single-machine mode: loopback only
    env.pop("RAY_ADDRESS", None)
    start = [ray, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
             "--include-dashboard=false", "--disable-usage-stats"]
    try:
        subprocess.run(start, env=env, check=True, timeout=120, capture_output=True)
        marker = tmp_path / "died-once"
        out = tmp_path / "sw"
        cmd = [str(BIN / "cmm-bt"), "sweep", str(flaky_strategy), "--out", str(out), "--data-root", str(data_root),
               "--plugins-dir", str(PLUGINS), "--ray-address", f"127.0.0.1:{port}", "--retries", "1",
               "-P", "execution.params.half_spread_ticks=1,2", "-P", f"execution.params.die_once={marker}"]
        proc = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"ray executor (cluster at 127.0.0.1:{port})" in proc.stdout
        doc = json.loads((out / "sweep.json").read_text())
        assert doc["executor"] == "ray"
        assert [t["status"] for t in doc["trials"]] == ["ok", "ok"]
        assert sorted(t["attempts"] for t in doc["trials"]) == [1, 2]
        assert all((Path(t["run_dir"]) / "complete").is_file() for t in doc["trials"])
        assert (out / "best.yaml").is_file()
    finally:
        subprocess.run([ray, "stop"], env=env, timeout=120, capture_output=True)
