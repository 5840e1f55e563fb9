"""A tiny randomly initialised Llama model with an offline tokenizer (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmm_bt.engine.synthetic import synthetic_market
from cmm_bt_plugins.features.market import WindowSpec, build_feature_set

TINY_LAYERS = 4
TINY_HIDDEN = 32


def build_tiny_model(path: Path) -> Path:
    """Save a 4-layer, hidden-32 Llama and a small BPE tokenizer (trained on prompt-like text) to ``path``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["Book, oldest first: spread imbalance midmove volume", "1 +0.3 -0.5 1.4", "vol 0.4 trend +1.5. Next:",
              "0123456789 +-. abcdefghijklmnopqrstuvwxyz"] * 20
    tok.train_from_iterator(corpus, trainer)
    from tokenizers import decoders
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=TINY_HIDDEN, intermediate_size=64,
                      num_hidden_layers=TINY_LAYERS, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def small_feature_set():
    m = synthetic_market(3000, seed=5)
    grid = np.arange(m.start_ns + 10**7, m.end_ns, 10**7)
    return build_feature_set(m, grid, WindowSpec(window=8, levels=3, horizon=4))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: loads real model weights (tens of seconds on first run)")
