"""A second teacher from a separate package drives the whole CMM pipeline of strategies/cmm.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from .conftest import cmm_bt, install_example

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ["-o", "teacher.name=random-features",
           "-o", "teacher.params={inputs: {window: 32, levels: 5, horizon: 10}, stride: 5, max_samples: 200, replay_max_samples: 240, depth: 4}",
           "-o", "students.params.max_epochs=2", "-o", "students.params.latency_steps=50", "-o", "students.params.max_train_rows=1000"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**install_example("cmm-bt-toy-teacher", tmp_path_factory.mktemp("site")), "CMM_BT_CACHE_DIR": str(cache)}


def test_toy_teacher_plans_and_runs_cmm(env, tmp_path):
    plan = cmm_bt(env, "plan", "strategies/cmm.yaml", *TEACHER, cwd=ROOT)
    assert plan.returncode == 0, plan.stderr
    assert "random-features" in plan.stdout and "cmm-signals" in plan.stdout and "teacher-signals" not in plan.stdout
    res = cmm_bt(env, "run", "strategies/cmm.yaml", *TEACHER, "--out", str(tmp_path / "run"), cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["students"] == 8 and m["teacher_params"] > 0 and m["fills"] > 0
    assert all(math.isfinite(m[f"pred_mae_{t}"]) for t in ("mid", "spread", "volume"))
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "random-features" in cfg
    # the second run reuses the cached teacher features, probe and students
    again = cmm_bt(env, "plan", "strategies/cmm.yaml", *TEACHER, cwd=ROOT)
    rows = {line.split("│")[1].strip(): line for line in again.stdout.splitlines() if line.count("│") > 3}
    for stage in ("teacher-features", "teacher-replay-features", "probe", "students"):
        assert "yes" in rows[stage], (stage, again.stdout)


def test_unknown_teacher_is_a_config_error(env):
    res = cmm_bt(env, "plan", "strategies/cmm.yaml", "-o", "teacher.name=random-feature", cwd=ROOT)
    assert res.returncode == 2 and "did you mean 'random-features'" in res.stderr
