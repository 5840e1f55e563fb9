"""The CMM pipeline hook end to end, with a fake teacher stage (no LLM)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from cmm_bt.config.strategy import ComponentSpec, Strategy
from cmm_bt.registry import Registry
from cmm_bt.run import RunSpec
from cmm_bt_plugins.cmm import pipeline
from cmm_bt_plugins.cmm.moe import MOE_CLASSES
from cmm_bt_plugins.cmm.probe import FluorescentProbe
from cmm_bt_plugins.cmm.students import STUDENT_CLASSES

from cmm_synthetic import fake_hidden, make_synthetic

TASKS = ["mid", "spread", "volume"]


@dataclass
class FakeFS:
    X: np.ndarray
    Y: np.ndarray
    realised_vol: np.ndarray

    def __len__(self):
        return len(self.X)

    @property
    def target_valid(self):
        return np.isfinite(self.Y).all(1)

    @property
    def book_valid(self):
        return np.ones(len(self), dtype=bool)

    @property
    def targets(self):
        return pd.DataFrame(self.Y, columns=TASKS)

    def y(self):
        return self.Y

    def naive(self):
        return pd.DataFrame({"mid": np.zeros(len(self)), "spread": np.ones(len(self)), "volume": np.zeros(len(self))})


def _lf(fs, stride):
    idx = np.arange(0, len(fs), stride)
    arr = fake_hidden(fs.X[idx], seed=1)
    return SimpleNamespace(indices=idx, layers=sorted(arr), layer=lambda l, a=arr: a[l])


def _fake_teacher_run(s):
    parts = {"train": slice(0, 540), "validation": slice(540, 720), "replay": slice(720, 900)}
    fsets = {k: FakeFS(s.X[v], s.Y[v], s.vol[v]) for k, v in parts.items()}
    feats = {k: _lf(fs, 2) for k, fs in fsets.items()}
    rng = np.random.default_rng(5)
    preds = {k: pd.DataFrame(fsets[k].Y[feats[k].indices] + 0.3 * rng.normal(size=(len(feats[k].indices), 3)), columns=TASKS) for k in fsets}
    teacher = SimpleNamespace(n_params=lambda: 135_000_000)
    return SimpleNamespace(feature_sets=fsets, features=feats, predictions=preds, teacher=teacher, latency_us={"p50": 190_000.0, "p99": 250_000.0})


def _run(tmp_path, moe="hajek", families=("layer", "task", "data")):
    reg = Registry()
    reg.register("probe", FluorescentProbe, "test")
    for c in STUDENT_CLASSES:
        reg.register("student", c, "test")
    for c in MOE_CLASSES:
        reg.register("moe", c, "test")
    strat = Strategy(
        execution=ComponentSpec(name="classic-price"),
        teacher=ComponentSpec(name="hf-causal-lm"),
        probe=ComponentSpec(name="fluorescent", params={"band_width": 1}),
        students=ComponentSpec(name="mlp", params={"families": list(families), "max_epochs": 15, "pca_dim": 4, "common_dim": 4, "embed_dim": 16, "hidden": 32, "lr": 5e-3, "latency_steps": 50}),
        moe=ComponentSpec(name=moe),
    )
    run = RunSpec(name="t", strategy=strat, resolved={}, strategy_file=None, dataset=None, splits={}, cache_dir=tmp_path, registry=reg, console=Console(file=io.StringIO()))
    s = make_synthetic()
    run.extra[pipeline.TEACHER_KEY] = _fake_teacher_run(s)
    return run, s


def test_pipeline_signals_tables_and_metrics(tmp_path):
    run, s = _run(tmp_path)
    sig = pipeline.cmm_bt_compute_signals(run=run, market=None, grid=np.arange(180))
    assert list(sig.columns) == ["pred_mid", "pred_spread", "pred_volume"] and len(sig) == 180
    assert np.isfinite(sig.to_numpy()).all()
    # the mixture predicts held-out targets far better than zero
    y = s.Y[720:]
    assert np.nanmean((sig["pred_mid"] - y[:, 0]) ** 2) < 0.5 * np.nanvar(y[:, 0])
    tables = run.extra["tables"]
    assert {"prediction_quality", "cmm_weights", "cmm_students", "probe", "cmm_weights_by_family"} <= set(tables)
    w = tables["cmm_weights"]
    assert np.allclose(w.groupby(["task", "regime"])["mean_weight"].sum(), 1.0)
    assert (tmp_path / "cmm" / "probe.json").exists()
    m = pipeline.cmm_bt_extra_metrics(run=run, result=None)
    for k in ("pred_mae_mid", "pred_r2_spread", "teacher_pred_mae_mid", "model_params", "cmm_decision_latency_us_p50", "teacher_decision_latency_us_p50", "student_task_mid_pred_mae_mid"):
        assert k in m, k
    assert 0 < m["model_params"] < 8 * 100_000
    assert m["cmm_decision_latency_us_p99"] >= m["cmm_decision_latency_us_p50"] > 0


@pytest.mark.parametrize("moe", ["mean", "best-single"])
def test_pipeline_moe_ablations_and_kd(tmp_path, moe):
    run, s = _run(tmp_path, moe=moe, families=("kd-fitnets",) if moe == "best-single" else ("layer",))
    sig = pipeline.cmm_bt_compute_signals(run=run, market=None, grid=np.arange(180))
    assert np.isfinite(sig.to_numpy()).all()
