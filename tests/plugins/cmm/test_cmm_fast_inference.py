"""The compact batch-1 CMM path (``cmm.fast``) equals the torch path (students + mixture)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cmm_bt_plugins.cmm.fast import CompiledStudents, FastCMM  # noqa: E402
from cmm_bt_plugins.cmm.moe import HajekMoE, MeanMoE  # noqa: E402
from cmm_bt_plugins.cmm.ofdd import StudentSet, StudentSpec, TrainedStudent  # noqa: E402
from cmm_bt_plugins.cmm.stages import decision_latency, mix_experts as mixture  # noqa: E402
from cmm_bt_plugins.cmm.students import GRUStudent, MLPStudent, TCNStudent  # noqa: E402

W, F, P, C = 12, 6, 4, 5
TOL = 1e-5


def _set(cls, seed: int = 0, **arch) -> StudentSet:
    """3 layer + 3 task (one output each) + 2 data students with random weights and scalings."""
    student = cls(cls.Config(pca_dim=P, common_dim=C, embed_dim=8, **arch))
    specs = [StudentSpec(f"layer:{i}", "layer", (0, 1, 2), (i,)) for i in range(3)]
    specs += [StudentSpec(f"task:{t}", "task", (t,), (t,)) for t in range(3)]
    specs += [StudentSpec(f"data:{r}", "data", (0, 1, 2), (r,), r) for r in range(2)]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        net = student.build(W, F, len(s.tasks), P).eval()
        with torch.no_grad():  # non-zero biases everywhere, so a dropped bias would show
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        out.append(TrainedStudent(s, net, 0, rng.normal(size=(P, C)) / 3, rng.normal(size=C) / 5))
    x_mean = rng.normal(size=F).astype(np.float32)
    x_std = (0.5 + rng.random(F)).astype(np.float32)
    return StudentSet(out, x_mean, x_std, rng.normal(size=3), 0.5 + rng.random(3), ["mid", "spread", "volume"], C)


def _inputs(seed: int = 1, n: int = 12) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, W, F)).astype(np.float32)
    X[0, 3, 2] = np.nan  # standardised to 0 in both paths
    X[1, -1, 0] = np.inf
    return X


CASES = [
    pytest.param(MLPStudent, {"hidden": 16, "compress": 3}, id="mlp"),
    pytest.param(GRUStudent, {"hidden": 10}, id="gru"),
    pytest.param(TCNStudent, {"channels": 7, "levels": 3, "kernel": 3}, id="tcn"),
    pytest.param(TCNStudent, {"channels": F, "levels": 2, "kernel": 2}, id="tcn-identity-residual"),
]


@pytest.mark.parametrize(("cls", "arch"), CASES)
def test_students_match_torch(cls, arch):
    ss = _set(cls, **arch)
    X = _inputs()
    p_ref, e_ref = ss.predict(X)
    cs = CompiledStudents(ss)
    for i in range(len(X)):
        p, e = cs.forward(X[i])
        assert np.array_equal(np.isnan(p), np.isnan(p_ref[:, i]))  # task students: NaN elsewhere
        assert np.nanmax(np.abs(p - p_ref[:, i])) < TOL
        assert np.abs(e - e_ref[:, i]).max() < TOL


@pytest.mark.parametrize(("cls", "arch"), CASES)
@pytest.mark.parametrize("bandwidth", ["median", "median-global", 0.7])
def test_hajek_mixture_matches(cls, arch, bandwidth):
    ss = _set(cls, seed=2, **arch)
    X = _inputs(3)
    p_ref, e_ref = ss.predict(X)
    moe = HajekMoE(HajekMoE.Config(bandwidth=bandwidth))
    for t in range(3):
        ex = ss.experts_for(t)
        moe.fit_task(t, p_ref[ex, :, t].T, e_ref[ex].transpose(1, 0, 2), np.zeros(len(X)))
    y_ref, w_ref = mixture(ss, moe, p_ref, e_ref)
    assert all(w.std(axis=1).max() > 1e-3 for w in w_ref.values())  # non-trivial weights
    fast = FastCMM(ss, moe)
    got = np.stack([fast.decide(x) for x in X])
    assert np.abs(got - y_ref).max() < TOL


def test_other_mixer_and_latency():
    ss = _set(MLPStudent, seed=4, hidden=16, compress=3)
    X = _inputs(5)
    y_ref, _ = mixture(ss, MeanMoE(MeanMoE.Config()), *ss.predict(X))
    fast = FastCMM(ss, MeanMoE(MeanMoE.Config()))
    assert np.abs(np.stack([fast.decide(x) for x in X]) - y_ref).max() < TOL
    lat = decision_latency(ss, HajekMoE(HajekMoE.Config()), X, 50)
    assert lat["samples"] == 50 and lat["p99"] >= lat["p50"] > 0
    assert np.isnan(decision_latency(ss, HajekMoE(HajekMoE.Config()), X[:0], 5)["p50"])


def test_bad_window_shape():
    cs = CompiledStudents(_set(MLPStudent, hidden=16, compress=3))
    with pytest.raises(ValueError, match="window"):
        cs.forward(np.zeros((W, F + 1), np.float32))
