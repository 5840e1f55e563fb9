from __future__ import annotations

import numpy as np
import pytest

from cmm_bt_plugins.cmm.moe import BestSingleMoE, GateMoE, HajekMoE, MeanMoE, hajek_contributions, hajek_weights


def _emb(seed=0, B=5, K=5, D=4):
    return np.random.default_rng(seed).normal(size=(B, K, D))


def test_hajek_permutation_equivariant():
    emb = _emb()
    w = hajek_weights(emb, 0.1)
    perm = np.array([3, 0, 4, 1, 2])
    assert np.allclose(hajek_weights(emb[:, perm], 0.1), w[:, perm])
    assert np.allclose(w.sum(1), 1.0)


def test_hajek_uniform_for_identical_experts():
    emb = np.repeat(_emb(K=1), 4, axis=1)
    w = hajek_weights(emb, 0.01)
    assert np.allclose(w, 0.25)
    assert np.allclose(hajek_contributions(emb), 0.0)


def test_hajek_outlier_gets_lowest_weight():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=(8, 1, 6))
    emb = centre + 0.1 * rng.normal(size=(8, 5, 6))
    emb[:, 2] += 5.0  # expert 2 disagrees with the others
    w = hajek_weights(emb, 0.05)
    assert (np.argmin(w, axis=1) == 2).all()
    assert (w[:, 2] < 0.5 / 5).all()
    # and the mixture follows the consensus, not the outlier
    preds = np.tile(np.array([1.0, 1.0, 10.0, 1.0, 1.0]), (8, 1))
    moe = HajekMoE(HajekMoE.Config(temperature=0.05))
    moe.fit_task(0, preds, emb, np.ones(8))
    yhat, _ = moe.combine(0, preds, emb)
    assert (np.abs(yhat - 1.0) < np.abs(preds.mean(1) - 1.0)).all()


def test_hajek_two_experts_equal_and_single_expert_one():
    assert np.allclose(hajek_weights(_emb(K=2), 0.01), 0.5)
    assert np.allclose(hajek_weights(_emb(K=1), 0.01), 1.0)


def test_hajek_global_bandwidth_and_bad_bandwidth():
    from cmm_bt.errors import ConfigError

    emb = _emb()
    moe = HajekMoE(HajekMoE.Config(bandwidth="median-global"))
    moe.fit_task(0, np.zeros((5, 5)), emb, np.zeros(5))
    assert moe.state[0] > 0
    bad = HajekMoE(HajekMoE.Config(bandwidth="wide"))
    with pytest.raises(ConfigError):
        bad.fit_task(0, np.zeros((5, 5)), emb, np.zeros(5))


def test_mean_best_single_and_gate():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    preds = np.stack([y + 0.05 * rng.normal(size=400), y + 1.0 * rng.normal(size=400), -y], axis=1)
    emb = rng.normal(size=(400, 3, 2))
    mean = MeanMoE(MeanMoE.Config())
    assert np.allclose(mean.combine(0, preds, emb)[0], preds.mean(1))
    best = BestSingleMoE(BestSingleMoE.Config())
    best.fit_task(0, preds, emb, y)
    assert np.allclose(best.combine(0, preds, emb)[0], preds[:, 0])
    gate = GateMoE(GateMoE.Config(steps=80, lr=0.1))
    gate.fit_task(0, preds, emb, y)
    yg, w = gate.combine(0, preds, emb)
    assert w[:, 0].mean() > 0.8
    assert np.mean((yg - y) ** 2) < np.mean((preds.mean(1) - y) ** 2) / 4
