"""The CMM stages, each run alone on small fakes (a planted-feature "teacher", no LLM)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from cmm_bt.pipeline import StageContext
from cmm_bt.stage_cache import StageCache
from cmm_bt_plugins.cmm import stages
from cmm_bt_plugins.cmm.moe import HajekMoE, MeanMoE
from cmm_bt_plugins.cmm.ofdd import StudentSet, StudentSpec, TrainedStudent
from cmm_bt_plugins.cmm.probe import FluorescentProbe
from cmm_bt_plugins.cmm.students import MLPStudent
from cmm_bt_plugins.models.products import (
    FittedMixture, ReplayTeacherFeatures, ReplayWindows, TeacherFeatures, TeacherLatency, TeacherModel,
    TeacherPredictions, TrainingWindows,
)
from cmm_bt_plugins.models.signals import TASKS

from cmm_synthetic import fake_hidden, make_synthetic


@dataclass
class FakeFS:
    X: np.ndarray
    Y: np.ndarray
    realised_vol: np.ndarray

    feature_names = ["dmid", "spread", "volume", "flow", "f4", "f5"]

    def __len__(self):
        return len(self.X)

    @property
    def steps(self):
        """Per-step rows whose last W rows up to i + W - 1 end window i (enough for timing decisions)."""
        return np.concatenate([self.X[0], self.X[1:, -1]])

    @property
    def target_valid(self):
        return np.isfinite(self.Y).all(1)

    @property
    def book_valid(self):
        return np.ones(len(self), dtype=bool)

    @property
    def targets(self):
        return pd.DataFrame(self.Y, columns=list(TASKS))

    def y(self):
        return self.Y.copy()

    def naive(self):
        return pd.DataFrame({"mid": np.zeros(len(self)), "spread": np.ones(len(self)), "volume": np.zeros(len(self))})


def _lf(fs, stride=2):
    idx = np.arange(0, len(fs), stride)
    arr = fake_hidden(fs.X[idx], seed=1)
    return SimpleNamespace(indices=idx, layers=sorted(arr), layer=lambda l, a=arr: a[l], __len__=lambda: len(idx))


@pytest.fixture(scope="module")
def world():
    """Fake products of the teacher stages: windows, features, predictions, latency, a teacher."""
    s = make_synthetic()
    parts = {"train": slice(0, 540), "validation": slice(540, 720), "replay": slice(720, 900)}
    fs = {k: FakeFS(s.X[v], s.Y[v], s.vol[v]) for k, v in parts.items()}
    feats = {k: _lf(f) for k, f in fs.items()}
    rng = np.random.default_rng(5)
    preds = {k: pd.DataFrame(fs[k].Y[feats[k].indices] + 0.3 * rng.normal(size=(len(feats[k].indices), 3)), columns=list(TASKS)) for k in fs}
    teacher = SimpleNamespace(n_params=lambda: 135_000_000, config=SimpleNamespace(batch_size=16),
                              hidden_states=lambda X, fs: fake_hidden(X, seed=1))
    return SimpleNamespace(
        s=s, windows=TrainingWindows(fs["train"], fs["validation"]), replay=ReplayWindows(fs["replay"], "test"),
        features=TeacherFeatures(feats["train"], feats["validation"]), replay_features=ReplayTeacherFeatures(feats["replay"], 2),
        predictions=TeacherPredictions(None, preds, pd.DataFrame()), teacher_latency=TeacherLatency(190_000.0, 250_000.0, 200_000.0),
        model=TeacherModel(teacher),
    )


def _ctx(tmp_path) -> StageContext:
    run = SimpleNamespace(where=None, console=Console(file=io.StringIO()), seed=0)
    return StageContext(run=run, market=None, grid=np.arange(180), data_key="d", replay_key="r", cache=StageCache(tmp_path), work_dir=tmp_path)


def _student(**params):
    base = {"families": ["layer", "task", "data"], "max_epochs": 15, "pca_dim": 4, "common_dim": 4, "embed_dim": 16, "hidden": 32,
            "lr": 5e-3, "latency_steps": 50, "min_samples": 16}
    return MLPStudent(MLPStudent.Config(**{**base, **params}))


def test_distillation_data_keeps_every_teacher_row(world, tmp_path):
    st = _student(max_train_rows=100)
    data = stages.DistillationDataStage(st).run(_ctx(tmp_path), world.windows, world.features, world.predictions)
    n_tr = len(data.train_idx)
    assert n_tr >= 100 and len(data.val_idx) >= 90  # 100 thinned rows plus the teacher's (stride 2)
    sel = data.teacher.sel_idx
    assert len(sel) == 270 + 90
    np.testing.assert_array_equal(data.X[sel[:270]], world.windows.train.X[world.features.train.indices])
    np.testing.assert_array_equal(data.teacher.preds[:270], world.predictions.predictions["train"].to_numpy())


def test_probe_stage_finds_the_planted_layers_and_round_trips(world, tmp_path):
    probe = FluorescentProbe(FluorescentProbe.Config(band_width=1, excitation=True, excitation_samples=16))
    stage = stages.ProbeStage(probe)
    res = stage.run(_ctx(tmp_path), world.windows, world.features, world.model)
    assert res.excitation is not None and res.excitation.shape == res.phi.shape
    assert res.peak_layers(0, 0) == [2]  # mid lives in layer 2 (cmm_synthetic.MID_LAYER)
    stage.save(res, tmp_path)
    back = stage.load(tmp_path, _ctx(tmp_path))
    np.testing.assert_array_equal(back.Phi, res.Phi) and (tmp_path / "probe.png").is_file()


def test_students_mixture_latency_and_signals(world, tmp_path):
    ctx = _ctx(tmp_path)
    st = _student()
    data = stages.DistillationDataStage(st).run(ctx, world.windows, world.features, world.predictions)
    probe = stages.ProbeStage(FluorescentProbe(FluorescentProbe.Config(band_width=1))).run(ctx, world.windows, world.features, world.model)
    students_stage = stages.StudentsStage(st)
    students = students_stage.run(ctx, data, probe)
    assert len(students.students) == 3 + 3 + 2 and 0 < students.n_params < 8 * 100_000
    # what the stage cache stores gives the same predictions
    (tmp_path / "s").mkdir()
    students_stage.save(students, tmp_path / "s")
    back = students_stage.load(tmp_path / "s", ctx)
    np.testing.assert_array_equal(back.predict(world.replay.replay.X)[0], students.predict(world.replay.replay.X)[0])

    mix = stages.MixtureStage(HajekMoE(HajekMoE.Config())).run(ctx, students, data)
    lat = stages.CMMLatencyStage(st).run(ctx, students, mix, world.replay, world.windows)
    assert lat.p99 >= lat.p50 > 0
    sig = stages.CMMSignalsStage("cmm-signals").run(ctx, students, mix, world.replay, world.replay_features, world.predictions,
                                                    lat, world.teacher_latency, world.model, probe)
    frame = sig.frame
    assert list(frame.columns) == ["pred_mid", "pred_spread", "pred_volume"] and len(frame) == 180 and np.isfinite(frame.to_numpy()).all()
    y = world.s.Y[720:]
    assert np.nanmean((frame["pred_mid"] - y[:, 0]) ** 2) < 0.5 * np.nanvar(y[:, 0])  # far better than zero
    assert {"prediction_quality", "cmm_weights", "cmm_students", "probe", "cmm_weights_by_family"} <= set(sig.tables)
    assert np.allclose(sig.tables["cmm_weights"].groupby(["task", "regime"])["mean_weight"].sum(), 1.0)
    for k in ("pred_mae_mid", "pred_r2_spread", "teacher_pred_mae_mid", "cmm_decision_latency_us_p50", "student_task_mid_pred_mae_mid"):
        assert k in sig.metrics, k
    assert sig.metrics["decision_latency_us_p50"] == lat.p50 and sig.metrics["cmm_speedup_p50"] == pytest.approx(190_000.0 / lat.p50)
    # energy per decision on the path the latency timed (cmm_bt.energy); the probe's samples
    assert lat.energy is not None and lat.energy.decisions >= 50 and sig.metrics["cmm_cpu_us_per_decision"] > 0
    assert sig.metrics["energy_per_decision_j"] == sig.metrics["cmm_energy_per_decision_j"] >= 0
    assert sig.tables["energy_per_decision"]["model"].tolist() == ["cmm"]
    assert sig.metrics["probe_samples_fit"] + sig.metrics["probe_samples_held_out"] == len(world.features.train.indices)
    assert "informative" in sig.tables["probe"]


class LinearStudents(StudentSet):
    """Numpy experts (no torch): expert k predicts ``w_k * last window value`` of its task column."""

    def __init__(self, weights: list[float]):
        specs = [StudentSpec(f"e{k}", "layer", (0, 1, 2), (k,)) for k in range(len(weights))]
        super().__init__([TrainedStudent(s, None, 10, np.eye(2), np.zeros(2)) for s in specs],
                         np.zeros(6, np.float32), np.ones(6, np.float32), np.zeros(3), np.ones(3), list(TASKS), 2, 8)
        self.w = np.asarray(weights)

    def predict(self, X):
        base = np.asarray(X)[:, -1, :3]
        preds = self.w[:, None, None] * base[None]
        emb = np.stack([np.stack([base[:, 0] * w, base[:, 1]], 1) for w in self.w])
        return preds, emb


def test_mixture_and_signals_without_torch(world, tmp_path):
    ctx = _ctx(tmp_path)
    students = LinearStudents([1.0, 1.2, 0.0])
    s = world.s
    data = stages.DistillationSet(s.X, s.Y, s.vol, np.arange(540), np.arange(540, 720), None)
    mix = stages.MixtureStage(MeanMoE(MeanMoE.Config())).run(ctx, students, data)
    assert isinstance(mix, FittedMixture) and mix.info == {"rows_train": 540, "rows_validation": 180}
    sig = stages.CMMSignalsStage("cmm-signals").run(ctx, students, mix, world.replay, world.replay_features, world.predictions,
                                                    stages.CMMLatency(5.0, 9.0, 6.0), world.teacher_latency, world.model, None)
    X = world.replay.replay.X
    np.testing.assert_allclose(sig.frame["pred_mid"].to_numpy(), (1.0 + 1.2 + 0.0) / 3 * X[:, -1, 0])
    q = sig.tables["prediction_quality"]
    assert set(q["rows"]) == {"all", "teacher"} and set(q[q["rows"] == "teacher"]["model"]) == {"cmm", "naive", "teacher"}
    truth = world.replay.replay.Y[:, 0]
    mae = np.nanmean(np.abs(sig.frame["pred_mid"].to_numpy() - truth))
    assert q[(q["rows"] == "all") & (q["model"] == "cmm") & (q["task"] == "mid")]["mae"].iloc[0] == pytest.approx(mae)
    w = sig.tables["cmm_weights"]
    assert set(w["regime"]) == {"all"} and np.allclose(w["mean_weight"], 1 / 3)
    m = sig.metrics
    assert m["decision_latency_us_p50"] == 5.0 and m["model_params"] == 30 and m["students"] == 3
    assert "probe_specialisation_index" not in m and "probe" not in sig.tables
