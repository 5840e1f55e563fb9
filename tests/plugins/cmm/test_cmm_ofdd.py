from __future__ import annotations


import numpy as np
import pytest
from pydantic import ValidationError

from cmm_bt.errors import ConfigError
from cmm_bt_plugins.cmm.ofdd import OFDDTrainer, StudentSet, TeacherData, plan_students
from cmm_bt_plugins.cmm.probe import FluorescentProbe, assign_regimes
from cmm_bt_plugins.cmm.students import GRUStudent, MLPStudent, TCNStudent

from cmm_synthetic import MID_LAYER, SPREAD_LAYER

FAST = dict(max_epochs=20, patience=5, batch_size=128, pca_dim=4, common_dim=4, embed_dim=16, lr=5e-3)


def _probe(s):
    probe = FluorescentProbe(FluorescentProbe.Config(band_width=1))
    train_rows = np.flatnonzero(np.isin(s.sel, s.train))
    res = probe.run(s.features, s.Y[s.sel], s.vol[s.sel], train_rows)
    return res, assign_regimes(s.vol, res.thresholds)


def _fit(s, student, seed=0, probe=None, regimes=None, console=None):
    if probe is None:
        probe, regimes = _probe(s)
    trainer = OFDDTrainer(student, seed=seed, console=console)
    teacher = TeacherData(s.sel, s.features, s.teacher_pred)
    return trainer.fit(s.X, s.Y, s.train, s.val, teacher, regimes=regimes, probe=probe)


def _mlp(**kw):
    return MLPStudent(MLPStudent.Config(**{**FAST, "hidden": 32, **kw}))


def test_plan_follows_the_probe(synthetic):
    probe, _ = _probe(synthetic)
    specs = plan_students(["layer", "task", "data"], list(range(6)), probe, n_bands=3)
    keys = [s.key for s in specs]
    assert keys == ["layer:0-1", "layer:2-3", "layer:4-5", "task:mid", "task:spread", "task:volume", "data:low-vol", "data:high-vol"]
    assert specs[3].band == (MID_LAYER,) and specs[4].band == (SPREAD_LAYER,)
    assert specs[3].tasks == (0,) and specs[6].regime == 0
    with pytest.raises(ConfigError):
        plan_students(["task"], list(range(6)), None)


def test_students_beat_an_untrained_student(synthetic):
    s = synthetic
    student = _mlp()
    trained = _fit(s, student)
    import torch

    torch.manual_seed(123)
    fresh = [type(st)(st.spec, student.build(s.X.shape[1], s.X.shape[2], len(st.spec.tasks), st.net.projector.out_features), st.n_params, st.common_map, st.common_bias) for st in trained.students]
    untrained = StudentSet(fresh, trained.x_mean, trained.x_std, trained.y_mean, trained.y_std, trained.tasks, trained.common_dim)
    test_sel = np.flatnonzero(np.isin(s.sel, s.test))
    rows = s.sel[test_sel]
    teacher = s.teacher_pred[test_sel]
    p_tr, e_tr = trained.predict(s.X[rows])
    p_un, _ = untrained.predict(s.X[rows])
    for k, st in enumerate(trained.students):
        for t in st.spec.tasks:
            err_tr = np.nanmean((p_tr[k, :, t] - teacher[:, t]) ** 2)
            err_un = np.nanmean((p_un[k, :, t] - teacher[:, t]) ** 2)
            assert err_tr < 0.6 * err_un, (st.spec.key, t, err_tr, err_un)
    assert e_tr.shape == (len(trained.students), len(rows), trained.common_dim)
    # a student's projected embedding tracks the common-space teacher features better than chance
    assert np.isfinite(e_tr).all()


def test_training_is_deterministic(synthetic):
    s = synthetic
    a = _fit(s, _mlp(cache=False, max_epochs=3, families=["layer", "data"], lambda_d=0.5))
    b = _fit(s, _mlp(cache=False, max_epochs=3, families=["layer", "data"], lambda_d=0.5))
    assert len(a.students) == 5
    for sa, sb in zip(a.students, b.students):
        for (na, ta), (nb, tb) in zip(sa.net.state_dict().items(), sb.net.state_dict().items()):
            assert na == nb and bool((ta == tb).all()), na


def test_student_set_save_load_round_trip(synthetic, tmp_path):
    s = synthetic
    probe, regimes = _probe(s)
    student = GRUStudent(GRUStudent.Config(**{**FAST, "max_epochs": 3, "hidden": 12, "families": ["kd-fitnets"]}))
    first = _fit(s, student, probe=probe, regimes=regimes)
    student.save(first, tmp_path)
    second = student.load(tmp_path)
    assert [st.spec for st in second.students] == [st.spec for st in first.students] and second.window == first.window
    p1, e1 = first.predict(s.X[:50])
    p2, e2 = second.predict(s.X[:50])
    assert np.array_equal(p1, p2) and np.array_equal(e1, e2)
    third = _fit(s, student, seed=1, probe=probe, regimes=regimes)
    assert not np.array_equal(third.predict(s.X[:50])[0], p1)


@pytest.mark.parametrize("cls", [MLPStudent, GRUStudent, TCNStudent])
def test_default_students_are_small(cls):
    st = cls(cls.Config())
    for window, n_features in [(20, 24), (64, 32), (100, 48)]:
        n = st.parameter_count(window, n_features, 3, 16)
        assert 1_000 < n < 100_000, (cls.name, window, n_features, n)


def test_kd_families_are_single_students():
    with pytest.raises(ValidationError, match="kd"):
        MLPStudent.Config(families=["kd-output", "layer"])
    assert [s.key for s in plan_students(["kd-fitnets"], [0, 3, 6, 9], None)] == ["kd-fitnets:6"]
