"""The example third-party plugin installs from its own folder and runs through `cmm-bt run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "cmm-bt-join-touch"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """Install the example into a throw-away target folder put on PYTHONPATH (the venv stays clean)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
        check=True,
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    return env


def cmm_bt(env, *args):
    return subprocess.run([sys.executable, "-m", "cmm_bt", *args], env=env, capture_output=True, text=True)


def test_example_plugin_is_listed(installed_example):
    res = cmm_bt(installed_example, "plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["join-touch"]["distribution"] == "cmm-bt-join-touch"
    assert "execution:join-touch" in rows["join-touch"]["components"]
    assert "cmm_bt_register_execution" in rows["join-touch"]["hooks"]


def test_example_plugin_runs_a_strategy(installed_example, tmp_path):
    out = tmp_path / "run"
    res = cmm_bt(installed_example, "run", str(EXAMPLE / "strategy.yaml"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fills"] > 0


def test_disabling_the_plugin_makes_its_policy_unknown(installed_example, tmp_path):
    env = dict(installed_example, CMM_BT_DISABLE_PLUGINS="join-touch")
    res = cmm_bt(env, "validate", str(EXAMPLE / "strategy.yaml"))
    assert res.returncode == 2
    assert "unknown execution plugin 'join-touch'" in res.stderr
