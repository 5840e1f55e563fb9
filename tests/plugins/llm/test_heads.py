from __future__ import annotations

import numpy as np
import pytest

from cmm_bt_plugins.llm.feature_cache import LayerFeatures
from cmm_bt_plugins.llm.heads import HeadsConfig, TeacherHeads


def _data(n, seed):
    rng = np.random.default_rng(seed)
    arrays = {l: rng.normal(size=(n, 12)).astype(np.float32) for l in range(4)}
    # layer 2 carries mid, layer 3 carries spread and volume
    y = np.stack([
        arrays[2][:, 0] * 2.0 - arrays[2][:, 1] + 0.05 * rng.normal(size=n),
        1.0 + 0.5 * arrays[3][:, 4] + 0.05 * rng.normal(size=n),
        3.0 - arrays[3][:, 5] + 0.05 * rng.normal(size=n),
    ], axis=1)
    return LayerFeatures(np.arange(n), list(range(4)), arrays), y


def test_ridge_best_layer_per_task():
    tr, ytr = _data(300, 0)
    va, yva = _data(100, 1)
    ytr[::17, 1] = np.nan  # missing targets are dropped
    heads = TeacherHeads(HeadsConfig()).fit(tr, ytr, va, yva)
    s = heads.summary().set_index("task")
    assert s.loc["mid", "layers"] == "2" and s.loc["spread", "layers"] == "3" and s.loc["volume", "layers"] == "3"
    assert (s["val_r2"] > 0.95).all()
    te, yte = _data(100, 2)
    pred = heads.predict(te)
    assert list(pred.columns) == ["mid", "spread", "volume"]
    np.testing.assert_allclose(pred.to_numpy(), yte, atol=0.3)
    assert heads.n_params() == 3 * 13


def test_concatenated_layers_and_internal_validation():
    tr, ytr = _data(200, 3)
    heads = TeacherHeads(HeadsConfig(layers=[2, -1], alphas=[0.01])).fit(tr, ytr)
    assert heads.summary()["layers"].tolist() == ["2,3"] * 3
    assert heads.heads["mid"].w.shape == (24,)


def test_mlp_head_learns():
    tr, ytr = _data(300, 4)
    va, yva = _data(100, 5)
    heads = TeacherHeads(HeadsConfig(kind="mlp", mlp_epochs=150, mlp_hidden=16)).fit(tr, ytr, va, yva)
    assert heads.summary().set_index("task").loc["mid", "val_r2"] > 0.8
    a = heads.predict(va)
    b = TeacherHeads(HeadsConfig(kind="mlp", mlp_epochs=150, mlp_hidden=16)).fit(tr, ytr, va, yva).predict(va)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # seeded


def test_too_few_samples():
    tr, ytr = _data(2, 0)
    with pytest.raises(ValueError):
        TeacherHeads().fit(tr, ytr)
