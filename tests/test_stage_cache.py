"""The stage cache removes the temporary folders of processes killed while storing (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys

from cmm_bt.stage_cache import StageCache


def test_dead_writers_temp_folders_are_removed_live_ones_kept(tmp_path):
    cache = StageCache(tmp_path)
    stage = cache.root / "teacher"
    stage.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = stage / f".k1.tmp-{proc.pid}"
    dead.mkdir()
    (dead / "weights.bin").write_bytes(b"half")
    live = stage / f".k2.tmp-{os.getppid()}"
    live.mkdir()
    cache.store("teacher", "k3", lambda folder: (folder / "x").write_text("1"), {"stage": "teacher"})
    assert cache.has("teacher", "k3")
    assert not dead.exists() and live.exists()
