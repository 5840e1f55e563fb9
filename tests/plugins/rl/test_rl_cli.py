"""cmm-bt run with an rl section: bad configs exit 2 in one line, the run folder, cache and determinism."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import STRATEGIES

#: A run small enough for a test: 2 x 512 steps of PPO, evaluations at 0, 512, 1024.
TINY = ["-o", "rl.params.total_timesteps=1024", "-o", "rl.params.eval_every=512", "-o", "rl.params.n_envs=2",
        "-o", "rl.params.hyper.n_steps=256", "-o", "rl.params.hyper.batch_size=128", "-o", "rl.params.net_arch=[16]",
        "-o", "rl.params.env.episode_length_s=10", "-o", "rl.params.progress=false", "-o", "reporters=[]"]

#: metrics that are timings (they differ between two runs of the same command)
TIMINGS = ("wall_s", "run_wall_s", "decisions_per_s", "events_per_s", "rl_train_wall_s", "rl_train_steps_per_s",
           "decision_latency_us_p50", "decision_latency_us_p99", "rl_compiled_decision_us_p50",
           "rl_compiled_decision_us_p99", "policy_latency_us_p50", "policy_latency_us_p99",
           *(f"{p}{k}" for p in ("", "rl_") for k in ("energy_per_decision_j", "cpu_energy_per_decision_j", "cpu_us_per_decision")))


def _one_line_error(result, *fragments):
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["rl.name=dqn", "rl.params.hyper={}", "rl.params.env.actions=continuous"],
     ("rl.params.env.actions", "needs discrete actions")),
    (["rl.name=ppx"], ("rl", "unknown rl-algorithm plugin 'ppx'", "did you mean 'ppo'")),
    (["rl.params.total_timesteps=0"], ("rl.params.total_timesteps", "greater than 0")),
    (["rl.params.env.grid=[[0,0],[-2,1]]"], ("rl.params.env.grid", "entry 1 [-2, 1] is a crossed quote")),
    (["rl.params.hyper.n_step=5"], ("rl.params.hyper.n_step", "unknown key")),
    (["rl.params.env.reward=sharpe"], ("rl.params.env.reward",)),
    (["engine.post_only=true"], ("rl.params.env.grid", "flatten", "post_only")),
], ids=["dqn-continuous", "unknown-algorithm", "zero-timesteps", "crossed-grid", "unknown-hyper", "unknown-reward",
        "flatten-post-only"])
def test_bad_rl_configs_exit_2_naming_file_and_key(cli, tmp_path, overrides, fragments):
    out = tmp_path / "run"
    args = [a for o in overrides for a in ("-o", o)]
    _one_line_error(cli("run", STRATEGIES / "rl-ppo.yaml", *args, "--out", out), "rl-ppo.yaml", *fragments)
    assert not out.exists()


def test_rl_policy_without_an_rl_section_is_a_config_error(cli, tmp_path):
    strategy = tmp_path / "bad.yaml"
    strategy.write_text("dataset: synthetic\nexecution: {name: rl-policy}\n")
    _one_line_error(cli("run", strategy, "--out", tmp_path / "run"), "execution", "needs a trained policy")


def test_validate_and_plan(cli):
    code, out, err = cli("validate", STRATEGIES / "rl-ppo.yaml", STRATEGIES / "rl-dqn.yaml")
    assert code == 0, err
    code, out, err = cli("plan", STRATEGIES / "rl-dqn.yaml")
    assert code == 0, err
    assert "rl-train" in out and "TrainedPolicy" in out and "rl-signals" in out


def _metrics(folder):
    m = json.loads((folder / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMINGS}


def test_run_folder_cache_and_determinism(cli, tmp_path, monkeypatch):
    runs = {}
    for name in ("a", "b", "a-again"):
        monkeypatch.setenv("CMM_BT_CACHE_DIR", str(tmp_path / ("cache-" + name.split("-")[0])))
        out = tmp_path / name
        code, _, err = cli("run", STRATEGIES / "rl-ppo.yaml", *TINY, "--out", out)
        assert code == 0, err
        runs[name] = out
    a = runs["a"]
    for f in ("training_curve.parquet", "training_curve.png", "metrics.json", "fills.parquet", "pipeline_stages.parquet"):
        assert (a / f).is_file(), f
    assert (a / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = pd.read_parquet(a / "training_curve.parquet")
    assert curve["timesteps"].tolist() == [0, 512, 1024]
    m = _metrics(a)
    assert m["rl_train_timesteps"] == 1024 and m["rl_selected_timestep"] in (0, 512, 1024)
    assert m["rl_validation_pnl"] == curve.loc[curve["selected"], "validation_pnl"].item()
    assert m["rl_validation_reward"] == curve["validation_reward"].max()
    raw = json.loads((a / "metrics.json").read_text())
    assert raw["decision_latency_us_p50"] > 0 and raw["rl_compiled_decision_us_p50"] > 0
    # energy per decision of SB3's predict: measured (CPU time > 0), the method in the run's table
    assert raw["rl_cpu_us_per_decision"] > 0 and raw["energy_per_decision_j"] == raw["rl_energy_per_decision_j"] >= 0
    energy = pd.read_parquet(a / "energy_per_decision.parquet")
    assert energy["model"].tolist() == ["rl-policy"] and energy["method"].iloc[0].startswith("codecarbon")
    # a fresh cache, the same command: the same metrics (timings aside) and fills
    assert _metrics(runs["b"]) == m
    pd.testing.assert_frame_equal(pd.read_parquet(a / "fills.parquet"), pd.read_parquet(runs["b"] / "fills.parquet"))
    # the cached policy is reused
    stages = pd.read_parquet(runs["a-again"] / "pipeline_stages.parquet").set_index("stage")
    assert bool(stages.loc["rl-train", "cached"]) and _metrics(runs["a-again"]) == m
    cfg = (a / "config.yaml").read_text()
    assert "rl:" in cfg and "ppo" in cfg
