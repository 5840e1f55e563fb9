"""Strategy composition: extends, overrides, merge rules."""

from __future__ import annotations

import pytest

from cmm_bt.config.loader import apply_overrides, compose, deep_merge
from cmm_bt.errors import ConfigError


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"engine": {"a": 1, "b": 2}, "reporters": [1, 2]}
    assert deep_merge(base, {"engine": {"b": 3}, "reporters": [9]}) == {"engine": {"a": 1, "b": 3}, "reporters": [9]}
    assert base["engine"]["b"] == 2  # not mutated


def test_extends_is_relative_to_the_file_and_child_wins(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "b.yaml").write_text("seed: 1\nengine: {order_qty: 2, position_limit: 5}\n")
    (tmp_path / "child.yaml").write_text("extends: base/b.yaml\nengine: {position_limit: 7}\n")
    assert compose(tmp_path / "child.yaml") == {"seed": 1, "engine": {"order_qty": 2, "position_limit": 7}}


def test_overrides_parse_values_as_yaml():
    out = apply_overrides({"engine": {}}, ["engine.maker_fee=-0.0001", "seed=3", "execution.name=glft", "x.y=[1, 2]"])
    assert out == {"engine": {"maker_fee": -0.0001}, "seed": 3, "execution": {"name": "glft"}, "x": {"y": [1, 2]}}


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, [bad])


def test_override_through_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match="seed is not a mapping"):
        apply_overrides({"seed": 1}, ["seed.x=2"])
