"""The teacher section's stages end to end with a tiny random Llama (no downloads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt.api import Session
from cmm_bt.pipeline import Signals
from cmm_bt.testing import make_run, run_stages
from cmm_bt_plugins.data.synthetic import SyntheticBook
from cmm_bt_plugins.llm import stages
from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher
from cmm_bt_plugins.models.products import ReplayTeacherFeatures, TeacherFeatures, TeacherPredictions


@pytest.fixture(scope="module")
def market():
    return SyntheticBook(SyntheticBook.Config(sessions=3, session_seconds=120, gap_seconds=10)).load([], None)


@pytest.fixture(scope="module")
def registry():
    return Session.start().registry


def _run(market, registry, tmp_path, model_dir, **sections):
    s = market.sessions
    splits = {"train": (s[0][0], s[0][1]), "validation": (s[1][0], s[1][1]), "test": (s[2][0], s[2][1] + 1),
              "all": (s[0][0], s[2][1] + 1)}
    params = {"model": str(model_dir), "batch_size": 16, "max_samples": 40, "stride": 2, "replay_max_samples": 60,
              "latency_samples": 3, "inputs": {"window": 8, "levels": 3, "horizon": 4}}
    strategy = {"execution": {"name": "classic-price"}, "engine": {"decision_interval_ms": 500},
                "teacher": {"name": "hf-causal-lm", "params": params}, **sections}
    return make_run(strategy, registry, splits=splits, cache_dir=tmp_path)


def test_teacher_signals_metrics_and_cache(market, registry, tmp_path, tiny_model_dir, monkeypatch):
    run = _run(market, registry, tmp_path, tiny_model_dir)
    products, pipeline = run_stages(run, market)
    sig = products.get(Signals)
    grid_len = len(sig.frame)
    assert list(sig.frame.columns) == ["pred_mid", "pred_spread", "pred_volume"]
    replay = products.get(ReplayTeacherFeatures)
    assert replay.stride == 4 and len(replay.replay) == 60 == grid_len // 4
    rows = replay.replay.indices
    f = sig.frame.to_numpy()
    assert np.isfinite(f[rows[0]:]).all()
    # predictions are held between teacher steps
    np.testing.assert_array_equal(f[rows[0] + 1], f[rows[0]])
    preds = products.get(TeacherPredictions)
    np.testing.assert_allclose(sig.frame["pred_spread"].to_numpy()[rows], preds.predictions["replay"]["spread"].to_numpy())
    train = products.get(TeacherFeatures).train
    assert len(train) == 40 and (train.indices % 2 == 0).all()
    assert set(preds.quality["split"]) == {"validation", "test"} and set(preds.quality["model"]) == {"teacher", "naive"}
    assert sig.tables["prediction_quality"] is preds.quality

    m = sig.metrics
    for key in ("pred_mae_mid", "pred_r2_spread", "pred_diracc_mid", "naive_mae_volume", "naive_diracc_mid",
                "model_params", "teacher_decision_latency_us_p50", "teacher_decision_latency_us_p99"):
        assert key in m and np.isfinite(m[key]), key
    assert m["naive_diracc_mid"] == 0.0
    assert m["teacher_samples"] == 40 + len(products.get(TeacherFeatures).validation) + 60
    assert 0 < m["teacher_decision_latency_us_p50"] <= m["teacher_decision_latency_us_p99"]
    assert m["decision_latency_us_p50"] == m["teacher_decision_latency_us_p50"]
    assert {r.stage: r.cached for r in pipeline.records.values()}["teacher-features"] is False
    assert (m["teacher_samples_train"], m["teacher_samples_replay"]) == (40, 60)
    # energy per decision of the teacher's forward (cmm_bt.energy): CPU time measured, method in words
    assert m["teacher_cpu_us_per_decision"] > 0 and m["energy_per_decision_j"] == m["teacher_energy_per_decision_j"] >= 0
    energy = sig.tables["energy_per_decision"]
    assert energy["model"].tolist() == ["teacher"] and energy["decisions"].iloc[0] >= 3
    assert energy["method"].iloc[0].startswith("codecarbon")

    monkeypatch.setenv("CMM_BT_ENERGY", "0")  # the forward count below is the latency probe's alone

    # same config again: features come from the stage cache, identical signals
    orig = HFCausalLMTeacher._forward
    calls = []
    HFCausalLMTeacher._forward = lambda self, p: (calls.append(len(p)), orig(self, p))[1]
    try:
        products2, pipeline2 = run_stages(_run(market, registry, tmp_path, tiny_model_dir), market)
    finally:
        HFCausalLMTeacher._forward = orig
    assert sum(calls) == 3 + 2  # only the latency probe (3 timed + 2 warm-up)
    assert pipeline2.records["teacher-features"].cached and pipeline2.records["teacher-replay-features"].cached
    np.testing.assert_array_equal(products2.get(Signals).frame.to_numpy(), f)


def test_students_replace_the_teacher_signals(market, registry, tmp_path, tiny_model_dir):
    from cmm_bt.api import build_pipeline

    pipe = build_pipeline(_run(market, registry, tmp_path, tiny_model_dir, students={"name": "mlp"}))
    assert pipe.provider[Signals].name == "cmm-signals"
    assert "teacher-signals" not in [s.name for s in pipe.stages]


def test_hold_predictions():
    out = stages.hold_predictions(6, np.array([1, 4]), pd.DataFrame({"mid": [1.0, 2.0], "spread": [3.0, 4.0], "volume": [5.0, 6.0]}))
    assert np.isnan(out.loc[0, "pred_mid"]) and out["pred_mid"].tolist()[1:] == [1, 1, 1, 2, 2]


def test_study_columns_name_the_tasks_runs_report():
    from cmm_bt_plugins.llm.pipeline import cmm_bt_study_columns

    rows = cmm_bt_study_columns(metrics=["epnl", "pred_mae_spread", "pred_mae_mid"])
    assert [r.key for r in rows] == ["pred_mae_mid", "pred_mae_spread"] and rows[0].better == "lower"
    assert cmm_bt_study_columns(metrics=["epnl"]) == []
