"""The teacher's fast options: the header's cached keys / values, length-bucketed batches, bfloat16."""

from __future__ import annotations

import numpy as np
import pytest

from cmm_bt_plugins.llm.stages import select_indices
from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

from .conftest import TINY_LAYERS


def _teacher(model_dir, **kw):
    kw.setdefault("batch_size", 8)
    kw.setdefault("chunk_size", 16)
    return HFCausalLMTeacher(HFCausalLMTeacher.Config(model=str(model_dir), **kw))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_prefix_cache_gives_the_plain_features(tiny_model_dir, small_feature_set, pooling):
    plain = _teacher(tiny_model_dir, dtype="float32", prefix_cache=False, pooling=pooling)
    fast = _teacher(tiny_model_dir, dtype="float32", prefix_cache=True, pooling=pooling)
    X = small_feature_set.X[10:30]
    a, b = plain.hidden_states(X, small_feature_set), fast.hidden_states(X, small_feature_set)
    head = fast._header()[0]
    assert len(head) > 3  # the header really was cached (a prompt starts with its tokens)
    assert sorted(a) == sorted(b) == list(range(TINY_LAYERS + 1))
    for l in a:
        np.testing.assert_allclose(b[l], a[l], rtol=1e-5, atol=1e-5)


def test_prefix_cache_falls_back_when_the_header_is_cut(tiny_model_dir, small_feature_set):
    """Prompts cut from the left (max_length) no longer start with the header: the plain path runs."""
    plain = _teacher(tiny_model_dir, dtype="float32", prefix_cache=False, max_length=12)
    fast = _teacher(tiny_model_dir, dtype="float32", prefix_cache=True, max_length=12)
    X = small_feature_set.X[:4]
    a, b = plain.hidden_states(X, small_feature_set), fast.hidden_states(X, small_feature_set)
    for l in a:
        np.testing.assert_array_equal(a[l], b[l])


def test_length_buckets_change_no_feature(tiny_model_dir, small_feature_set, tmp_path):
    rows = select_indices(small_feature_set, 1, 40, require_targets=True)
    t = _teacher(tiny_model_dir, dtype="float32", length_buckets=True)
    order = t.batch_order(small_feature_set.X[rows[:16]], small_feature_set)
    lengths = [len(i) for i in t.load()[1](t.prompts(small_feature_set, rows[:16]))["input_ids"]]
    assert sorted(order.tolist()) == list(range(16)) and np.all(np.diff(np.asarray(lengths)[order]) >= 0)
    assert _teacher(tiny_model_dir, length_buckets=False).batch_order(small_feature_set.X[rows[:16]], small_feature_set) is None
    a = _teacher(tiny_model_dir, dtype="float32", length_buckets=False).extract(small_feature_set, tmp_path / "a", rows, progress=False)
    b = t.extract(small_feature_set, tmp_path / "b", rows, progress=False)
    for l in a.layers:  # results are put back in row order
        np.testing.assert_allclose(np.asarray(b.layer(l)), np.asarray(a.layer(l)), rtol=1e-5, atol=1e-5)


def test_bfloat16_default_is_close_to_float32(tiny_model_dir, small_feature_set):
    fast = _teacher(tiny_model_dir)
    assert fast.config.dtype == "bfloat16" and fast.config.prefix_cache and fast.config.length_buckets
    plain = _teacher(tiny_model_dir, dtype="float32", prefix_cache=False)
    X = small_feature_set.X[40:56]
    a, b = plain.hidden_states(X, small_feature_set), fast.hidden_states(X, small_feature_set)
    for l in a:
        assert b[l].dtype == np.float32
        rel = np.linalg.norm(b[l] - a[l], axis=1) / np.linalg.norm(a[l], axis=1)
        assert rel.max() < 0.05, (l, rel.max())


def test_identity_names_the_fast_options(tiny_model_dir):
    base = _teacher(tiny_model_dir).identity()
    assert base["dtype"] == "bfloat16" and base["prefix_cache"] is True
    plain = _teacher(tiny_model_dir, dtype="float32", prefix_cache=False).identity()
    assert "prefix_cache" not in plain  # the plain path keeps the cache keys it had before the option existed
    assert plain != _teacher(tiny_model_dir, dtype="float32").identity() != base
    assert base == _teacher(tiny_model_dir, length_buckets=False).identity()  # batching changes no feature
