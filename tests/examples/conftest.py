"""Install an example plugin package into a throw-away folder put on PYTHONPATH (the venv stays clean)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def install_example(name: str, target: Path) -> dict[str, str]:
    """pip-install ``examples/plugins/<name>`` into ``target``; returns an environment that sees it."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLES / name)],
                   check=True)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))


def cmm_bt(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmm_bt", *args], env=env, capture_output=True, text=True, cwd=cwd)
