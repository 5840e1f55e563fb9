"""The example third-party plugin installs from its own folder and runs through `cmm-bt run`."""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLES, cmm_bt, install_example

EXAMPLE = EXAMPLES / "cmm-bt-join-touch"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    return install_example(EXAMPLE.name, tmp_path_factory.mktemp("site"))


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
