from __future__ import annotations

import json

import numpy as np
import pytest

from cmm_bt.errors import ConfigError
from cmm_bt_plugins.llm.stages import select_indices
from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

from .conftest import TINY_HIDDEN, TINY_LAYERS


def _teacher(model_dir, **kw):
    kw.setdefault("batch_size", 8)
    kw.setdefault("chunk_size", 16)
    return HFCausalLMTeacher(HFCausalLMTeacher.Config(model=str(model_dir), **kw))


def test_extract_shapes_layers_and_cache_reuse(tiny_model_dir, small_feature_set, tmp_path, monkeypatch):
    t = _teacher(tiny_model_dir, layers=[0, 2, -1], max_samples=40)
    assert t.num_layers == TINY_LAYERS and t.hidden_size() == TINY_HIDDEN
    assert t.layers() == [0, 2, TINY_LAYERS]
    rows = select_indices(small_feature_set, 1, 40, require_targets=True)
    lf = t.extract(small_feature_set, tmp_path, rows, progress=False)
    assert len(lf) == 40 and lf.layers == [0, 2, 4]
    assert lf.layer(4).shape == (40, TINY_HIDDEN) and lf.layer(4).dtype == np.float32
    assert isinstance(lf.layer(4), np.memmap) and np.isfinite(lf.stack([0, 4])).all()
    assert small_feature_set.target_valid[lf.indices].all()
    with pytest.raises(KeyError):
        lf.layer(1)
    entry = lf.path
    assert json.loads((entry / "progress.json").read_text())["done"] == 40
    assert (entry / "layer_004.f32").stat().st_size == 40 * TINY_HIDDEN * 4
    # second extraction: served from the cache, no forward pass
    t2 = _teacher(tiny_model_dir, layers=[0, 2, -1], max_samples=40)
    monkeypatch.setattr(t2, "_forward", lambda prompts: (_ for _ in ()).throw(AssertionError("forward called")))
    lf2 = t2.extract(small_feature_set, tmp_path, rows, progress=False)
    assert lf2.path == entry
    np.testing.assert_array_equal(np.asarray(lf2.layer(2)), np.asarray(lf.layer(2)))


def test_deterministic_and_batch_independent_last_token(tiny_model_dir, small_feature_set):
    t = _teacher(tiny_model_dir)
    prompts = t.prompts(small_feature_set, np.arange(10, 14))
    a = t._forward(prompts)
    b = t._forward(prompts)
    one = t._forward(prompts[2:3])
    for l in t.layers():
        np.testing.assert_array_equal(a[l], b[l])
        np.testing.assert_allclose(a[l][2], one[l][0], rtol=1e-4, atol=1e-5)


def test_mean_pooling_differs_from_last(tiny_model_dir, small_feature_set):
    prompts = _teacher(tiny_model_dir).prompts(small_feature_set, np.arange(3))
    last = _teacher(tiny_model_dir)._forward(prompts)
    mean = _teacher(tiny_model_dir, pooling="mean")._forward(prompts)
    assert not np.allclose(last[TINY_LAYERS], mean[TINY_LAYERS])


def test_resume_after_interruption(tiny_model_dir, small_feature_set, tmp_path):
    rows = select_indices(small_feature_set, 1, 48, require_targets=True)
    ref = _teacher(tiny_model_dir).extract(small_feature_set, tmp_path / "ref", rows, progress=False)
    t = _teacher(tiny_model_dir, max_samples=48)
    calls = {"n": 0}
    real = t._forward

    def flaky(prompts):
        calls["n"] += 1
        if calls["n"] == 4:  # chunk = 16 samples = 2 batches: dies in the 2nd chunk
            raise KeyboardInterrupt
        return real(prompts)

    t._forward = flaky
    with pytest.raises(KeyboardInterrupt):
        t.extract(small_feature_set, tmp_path / "c", rows, progress=False)
    assert json.loads((tmp_path / "c" / "progress.json").read_text())["done"] == 16
    t2 = _teacher(tiny_model_dir, max_samples=48)
    seen = []
    real2 = t2._forward
    t2._forward = lambda prompts: (seen.append(len(prompts)), real2(prompts))[1]
    lf = t2.extract(small_feature_set, tmp_path / "c", rows, progress=False)
    assert sum(seen) == 32  # only the two missing chunks
    for l in lf.layers:
        np.testing.assert_allclose(np.asarray(lf.layer(l)), np.asarray(ref.layer(l)), rtol=1e-5, atol=1e-6)


def test_identity_depends_on_template_layers_pooling_and_inputs(tiny_model_dir):
    base = _teacher(tiny_model_dir).identity()
    assert base == _teacher(tiny_model_dir).identity()
    for other in ({"prompt": {"steps": 3}}, {"layers": [1]}, {"pooling": "mean"}, {"inputs": {"window": 9}}, {"max_length": 64}):
        assert base != _teacher(tiny_model_dir, **other).identity(), other
    assert base == _teacher(tiny_model_dir, batch_size=3, chunk_size=5).identity()  # batching changes no feature


def test_select_indices_stride_and_cap(small_feature_set):
    fs = small_feature_set
    idx = select_indices(fs, stride=3, max_samples=None, require_targets=True)
    assert (idx % 3 == 0).all() and fs.target_valid[idx].all()
    capped = select_indices(fs, stride=1, max_samples=25, require_targets=True)
    assert capped.size == 25 and np.all(np.diff(capped) > 0) and capped[-1] > len(fs) // 2


def test_decision_latency(tiny_model_dir, small_feature_set):
    t = _teacher(tiny_model_dir)
    lat = t.decision_latency_us(small_feature_set.X[:5], small_feature_set)
    assert 0 < lat["p50"] <= lat["p99"] and len(lat["samples"]) == 5


def test_bad_model_and_layers_are_config_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="model not found"):
        HFCausalLMTeacher(HFCausalLMTeacher.Config(model=str(tmp_path / "nope"))).load()
    with pytest.raises(ConfigError, match="out of range"):
        _teacher(tiny_model_dir, layers=[9]).layers()


def test_teacher_config_rejects_unknown_keys():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        HFCausalLMTeacher.Config(modle="x")
