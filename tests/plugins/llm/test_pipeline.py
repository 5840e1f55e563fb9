from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from cmm_bt.config.strategy import ComponentSpec, Strategy
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import decision_grid
from cmm_bt.registry import Registry
from cmm_bt.run import RunSpec
from cmm_bt_plugins.data.synthetic import SyntheticBook
from cmm_bt_plugins.llm import pipeline
from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher


@pytest.fixture(scope="module")
def market():
    return SyntheticBook(SyntheticBook.Config(sessions=3, session_seconds=120, gap_seconds=10)).load([], None)


def _run(market, tmp_path, model_dir, **strategy):
    reg = Registry()
    reg.register("teacher", HFCausalLMTeacher, "llm-teacher")
    s = market.sessions
    splits = {"train": (s[0][0], s[0][1]), "validation": (s[1][0], s[1][1]), "test": (s[2][0], s[2][1] + 1),
              "all": (s[0][0], s[2][1] + 1)}
    params = {"model": str(model_dir), "batch_size": 16, "max_samples": 40, "stride": 2, "replay_max_samples": 60,
              "latency_samples": 3, "inputs": {"window": 8, "levels": 3, "horizon": 4}}
    st = Strategy(execution=ComponentSpec(name="classic-price"), engine={"decision_interval_ms": 500},
                  teacher=ComponentSpec(name="hf-causal-lm", params=params), **strategy)
    return RunSpec(name="t", strategy=st, resolved={}, strategy_file=None, dataset=SimpleNamespace(name="synthetic"),
                   splits=splits, cache_dir=tmp_path, registry=reg, console=Console(quiet=True))


def test_teacher_signals_metrics_and_extras(market, tmp_path, tiny_model_dir):
    run = _run(market, tmp_path, tiny_model_dir)
    grid, _ = decision_grid(market, EngineConfig(decision_interval_ms=500), *run.splits["test"])
    sig = pipeline.cmm_bt_compute_signals(run=run, market=market, grid=grid)
    assert list(sig.columns) == ["pred_mid", "pred_spread", "pred_volume"] and len(sig) == len(grid)
    tr = run.extra[pipeline.EXTRA_KEY]
    assert tr.replay_stride == 4 and len(tr.features["replay"]) == 60
    rows = tr.features["replay"].indices
    assert np.isfinite(sig.to_numpy()[rows[0]:]).all()
    # predictions are held between teacher steps
    np.testing.assert_array_equal(sig["pred_mid"].to_numpy()[rows[0] + 1], sig["pred_mid"].to_numpy()[rows[0]])
    np.testing.assert_allclose(sig["pred_spread"].to_numpy()[rows], tr.predictions["replay"]["spread"].to_numpy())
    assert len(tr.features["train"]) == 40 and (tr.features["train"].indices % 2 == 0).all()
    assert set(tr.quality["split"]) == {"validation", "test"} and set(tr.quality["model"]) == {"teacher", "naive"}
    assert run.extra["tables"]["prediction_quality"] is tr.quality

    result = SimpleNamespace(extra={})
    m = pipeline.cmm_bt_extra_metrics(run=run, result=result)
    for key in ("pred_mae_mid", "pred_r2_spread", "pred_diracc_mid", "naive_mae_volume", "naive_diracc_mid",
                "model_params", "teacher_decision_latency_us_p50", "teacher_decision_latency_us_p99"):
        assert key in m and np.isfinite(m[key]), key
    assert m["naive_diracc_mid"] == 0.0
    assert m["model_params"] > tr.teacher.n_params()
    assert 0 < m["teacher_decision_latency_us_p50"] <= m["teacher_decision_latency_us_p99"]
    assert "prediction_quality" in result.extra

    # same config again: features come from the cache, identical signals
    run2 = _run(market, tmp_path, tiny_model_dir)
    orig = HFCausalLMTeacher._forward
    calls = []
    HFCausalLMTeacher._forward = lambda self, p: (calls.append(len(p)), orig(self, p))[1]
    try:
        sig2 = pipeline.cmm_bt_compute_signals(run=run2, market=market, grid=grid)
    finally:
        HFCausalLMTeacher._forward = orig
    assert sum(calls) == 3 + 2  # only the latency probe (3 timed + 2 warm-up)
    np.testing.assert_array_equal(sig2.to_numpy(), sig.to_numpy())


def test_not_a_teacher_only_strategy(market, tmp_path, tiny_model_dir):
    run = _run(market, tmp_path, tiny_model_dir, students=ComponentSpec(name="mlp"))
    assert pipeline.cmm_bt_compute_signals(run=run, market=market, grid=np.arange(3)) is None
    run = _run(market, tmp_path, tiny_model_dir)
    assert pipeline.cmm_bt_extra_metrics(run=run, result=SimpleNamespace(extra={})) is None


def test_hold_predictions():
    import pandas as pd

    out = pipeline.hold_predictions(6, np.array([1, 4]), pd.DataFrame({"mid": [1.0, 2.0], "spread": [3.0, 4.0], "volume": [5.0, 6.0]}))
    assert np.isnan(out.loc[0, "pred_mid"]) and out["pred_mid"].tolist()[1:] == [1, 1, 1, 2, 2]
