"""The shared numba Hájek-MoE kernel: libm-free exponentials, and the mixture against ``HajekMoE``."""

import numpy as np
import pytest

pytest.importorskip("numba")

from cmm_bt_plugins.cmm.hajek_kernel import exp_neg, hajek_mix  # noqa: E402
from numba import njit  # noqa: E402


def test_exp_without_libm():
    x = -np.concatenate([np.linspace(0.0, 750.0, 200001), [0.0, 1e-300, 700.0, 745.0]])
    ref, got = np.exp(x), exp_neg(x)
    assert np.abs(got - ref).max() <= 2e-16
    ok = ref > 1e-300
    assert (np.abs(got[ok] - ref[ok]) / ref[ok]).max() < 1e-15


@njit(cache=False)
def _mix(emb, preds, experts, n_experts, bandwidth, temp):
    K, kmax = emb.shape[0], experts.shape[1]
    y = np.empty(n_experts.shape[0])
    hajek_mix(emb, preds, experts, n_experts, bandwidth, temp, np.empty((K, K)),
              np.empty(max(kmax * (kmax - 1) // 2, 1)), np.empty(kmax), y)
    return y


def test_mixture_matches_the_moe_weights():
    torch = pytest.importorskip("torch")  # noqa: F841 - HajekMoE's module imports torch
    from cmm_bt_plugins.cmm.moe import HajekMoE

    rng = np.random.default_rng(3)
    K, T, CD = 5, 2, 4
    emb, preds = rng.normal(size=(K, CD)), rng.normal(size=(K, T))
    experts = np.array([[0, 1, 2, 3], [1, 3, 4, 0]], dtype=np.int64)
    n_experts = np.array([4, 3], dtype=np.int64)
    moe = HajekMoE(HajekMoE.Config())
    y = _mix(emb, preds, experts, n_experts, np.full(T, np.nan), float(moe.config.temperature))
    for t in range(T):
        ex = experts[t, : n_experts[t]]
        w = moe.weights(t, preds[ex, t][None], emb[ex][None])[0]
        assert y[t] == pytest.approx(float(w @ preds[ex, t]), rel=1e-12, abs=1e-12)
    # one expert: its prediction; none: NaN
    y1 = _mix(emb, preds, experts, np.array([1, 0], dtype=np.int64), np.full(T, np.nan), 1.0)
    assert y1[0] == preds[0, 0] and np.isnan(y1[1])
