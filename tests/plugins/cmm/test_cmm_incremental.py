"""The incremental CMM path (``cmm.incremental``) over consecutive windows equals the torch path."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cmm_bt_plugins.cmm.incremental import IncrementalCMM, gelu32, supports  # noqa: E402
from cmm_bt_plugins.cmm.moe import HajekMoE, MeanMoE  # noqa: E402
from cmm_bt_plugins.cmm.ofdd import StudentSet, StudentSpec, TrainedStudent  # noqa: E402
from cmm_bt_plugins.cmm.stages import decision_latency, mix_experts  # noqa: E402
from cmm_bt_plugins.cmm.students import GRUStudent, MLPStudent  # noqa: E402

W, F = 12, 6


def _set(cls=MLPStudent, seed: int = 0, P: int = 4, C: int = 5, proj_dims=None, w: int = W, f: int = F, **arch) -> StudentSet:
    """3 layer + 3 task (one output each) + 2 data students with random weights and non-zero biases."""
    arch = arch or {"hidden": 16, "compress": 3}
    student = cls(cls.Config(pca_dim=P, common_dim=C, embed_dim=8, **arch))
    specs = [StudentSpec(f"layer:{i}", "layer", (0, 1, 2), (i,)) for i in range(3)]
    specs += [StudentSpec(f"task:{t}", "task", (t,), (t,)) for t in range(3)]
    specs += [StudentSpec(f"data:{r}", "data", (0, 1, 2), (r,), r) for r in range(2)]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    for k, s in enumerate(specs):
        m = P if proj_dims is None else proj_dims[k]  # bands of different widths: fewer projector outputs used
        net = student.build(w, f, len(s.tasks), P).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        out.append(TrainedStudent(s, net, 0, rng.normal(size=(m, C)) / 3, rng.normal(size=C) / 5))
    x_mean = rng.normal(size=f).astype(np.float32)
    x_std = (0.5 + rng.random(f)).astype(np.float32)
    return StudentSet(out, x_mean, x_std, rng.normal(size=3), 0.5 + rng.random(3), ["mid", "spread", "volume"], C)


def _steps(seed: int, n: int, w: int = W, f: int = F) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(size=(n + w - 1, f)).astype(np.float32)
    steps[5, 2] = np.nan  # standardised to 0 in both paths (in W windows)
    steps[w + 3, 0] = np.inf
    steps[2 * w + 1, 4] = -np.inf
    return steps


def _windows(steps: np.ndarray, w: int = W) -> np.ndarray:
    """``X [n, W, F]`` as FeatureSet builds it: X[i] is steps i .. i + W - 1."""
    return np.lib.stride_tricks.sliding_window_view(steps, w, axis=0).transpose(0, 2, 1)


def _fitted(ss: StudentSet, bandwidth, X: np.ndarray) -> HajekMoE:
    moe = HajekMoE(HajekMoE.Config(bandwidth=bandwidth))
    p, e = ss.predict(X)
    for t in range(3):
        ex = ss.experts_for(t)
        moe.fit_task(t, p[ex, :, t].T, e[ex].transpose(1, 0, 2), np.zeros(len(X)))
    return moe


@pytest.mark.parametrize("bandwidth", ["median", "median-global", 0.7])
@pytest.mark.parametrize("proj_dims", [None, [4, 3, 2, 4, 4, 1, 4, 3]], ids=["full-bands", "narrow-bands"])
def test_consecutive_windows_match_torch(bandwidth, proj_dims):
    ss = _set(seed=2, proj_dims=proj_dims)
    steps = _steps(3, 4 * W + 5)  # the rings wrap around several times
    X = _windows(steps)
    moe = _fitted(ss, bandwidth, X)
    y_ref, w_ref = mix_experts(ss, moe, *ss.predict(X))
    assert all(w.std(axis=1).max() > 1e-3 for w in w_ref.values())  # non-trivial weights
    inc = IncrementalCMM(ss, moe)
    got = [inc.reset(steps[:W]).copy()]
    for i in range(1, len(X)):
        got.append(inc.step_at(steps, i + W - 1).copy())
    np.testing.assert_allclose(np.stack(got), y_ref, rtol=1e-5, atol=1e-5)


def test_row_api_reset_and_default_sizes():
    """Default student sizes (W = 32, F = 25): ``step(row)`` = ``step_at``; a reset restarts the window."""
    w = 32
    ss = _set(seed=4, P=16, C=16, w=w, f=25, hidden=64, compress=8)
    steps = _steps(5, 80, w, 25)
    X = _windows(steps, w)
    moe = _fitted(ss, "median", X)
    y_ref, _ = mix_experts(ss, moe, *ss.predict(X))
    a, b = IncrementalCMM(ss, moe), IncrementalCMM(ss, moe)
    a.reset(steps[:w]), b.reset(steps[:w])
    for i in range(1, len(X)):
        ya = a.step_at(steps, i + w - 1).copy()
        yb = b.step(steps[i + w - 1]).copy()
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(ya, y_ref[i], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.reset(X[17]), y_ref[17], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.step(steps[17 + w]), y_ref[18], rtol=1e-5, atol=1e-5)


def test_stepper_is_step_at_on_any_step_array():
    """``stepper(steps)`` checks the array once (a strided float64 one is converted, a read-only one
    is used as it is) and then decides exactly as ``step_at``."""
    w = 32
    ss = _set(seed=6, P=16, C=16, w=w, f=25, hidden=64, compress=8)
    steps = _steps(7, 70, w, 25)
    moe = _fitted(ss, "median", _windows(steps, w))
    a, b = IncrementalCMM(ss, moe), IncrementalCMM(ss, moe)
    strided = np.asfortranarray(steps.astype(np.float64))
    read_only = steps.copy()
    read_only.setflags(write=False)
    for given in (strided, read_only):
        decide = b.stepper(given)
        a.reset(steps[:w]), b.reset(steps[:w])
        for r in range(w, len(steps)):
            np.testing.assert_array_equal(decide(r), a.step_at(steps, r))
    with pytest.raises(ValueError, match="step rows must be"):
        b.stepper(steps[:, :10])


def test_gelu_approximation():
    v = np.concatenate([np.linspace(-12, 12, 100001), [0.0, -0.0, 1e-30, 50.0, -50.0]]).astype(np.float32)
    exact = np.array([0.5 * float(x) * (1.0 + math.erf(float(x) / math.sqrt(2.0))) for x in v])
    assert np.abs(gelu32(v) - exact).max() < 2e-6


def test_supported_sets_and_latency_paths():
    ss = _set(seed=6)
    steps = _steps(7, 3 * W)
    X = _windows(steps)
    assert supports(ss, HajekMoE(HajekMoE.Config()))
    assert not supports(ss, MeanMoE(MeanMoE.Config()))
    gru = _set(GRUStudent, seed=6, hidden=10)
    assert not supports(gru, HajekMoE(HajekMoE.Config()))
    with pytest.raises(NotImplementedError):
        IncrementalCMM(gru, HajekMoE(HajekMoE.Config()))
    lat = decision_latency(ss, HajekMoE(HajekMoE.Config()), X, 100, step_rows=steps)  # wraps around the rows
    assert lat["path"] == "incremental" and lat["samples"] == 100 and lat["p99"] >= lat["p50"] > 0
    assert decision_latency(ss, MeanMoE(MeanMoE.Config()), X, 20, step_rows=steps)["path"] == "windows"
    assert decision_latency(gru, HajekMoE(HajekMoE.Config()), X, 20, step_rows=steps)["path"] == "windows"
    assert decision_latency(ss, HajekMoE(HajekMoE.Config()), X, 20)["path"] == "windows"


def test_bad_shapes():
    inc = IncrementalCMM(_set(), HajekMoE(HajekMoE.Config()))
    with pytest.raises(ValueError, match="window"):
        inc.reset(np.zeros((W - 1, F), np.float32))
    with pytest.raises(ValueError, match="step rows"):
        inc.step(np.zeros(F + 1, np.float32))
