"""Plugin-owned strategy sections: declared by plugins, validated in stage 2 like the host's keys."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from cmm_bt.components import Component, ExecutionPolicy, Params
from cmm_bt.config.loader import validate_strategy
from cmm_bt.config.strategy import ComponentSpec
from cmm_bt.errors import ConfigError
from cmm_bt.registry import Registry
from cmm_bt.sections import Section


class Widget(Component):
    kind = "widget"


class Gear(Widget):
    name = "gear"

    class Config(Params):
        teeth: int = 12


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int


class Still(ExecutionPolicy):
    name = "x"


def _registry() -> Registry:
    reg = Registry()
    reg.register("execution", Still, "p")
    reg.add_kind("widget", Widget, "p")
    reg.register("widget", Gear, "p")
    reg.add_section(Section("widget", kind="widget"), "p")
    reg.add_section(Section("schedule", model=Schedule), "p")
    return reg


BASE = {"execution": {"name": "x"}, "reporters": []}


def _validate(data):
    return validate_strategy({**BASE, **data}, file="s.yaml", registry=_registry())[0]


def test_declared_sections_validate_with_their_model_and_component():
    st = _validate({"widget": {"name": "gear", "params": {"teeth": 3}}, "schedule": {"every": 5}})
    assert st.section("widget") == ComponentSpec(name="gear", params={"teeth": 3})
    assert st.section("schedule") == Schedule(every=5)
    assert _validate({"widget": None}).section("widget") is None  # null: left out


@pytest.mark.parametrize("data, fragments", [
    ({"widgte": {"name": "gear"}}, ("s.yaml: widgte", "unknown key", "did you mean 'widget'")),
    ({"widget": {"name": "gearr"}}, ("s.yaml: widget", "unknown widget plugin 'gearr'", "did you mean 'gear'")),
    ({"widget": {"name": "gear", "params": {"teth": 1}}}, ("widget.params.teth", "unknown key")),
    ({"schedule": {"every": "often"}}, ("schedule.every",)),
])
def test_bad_sections_are_config_errors(data, fragments):
    with pytest.raises(ConfigError) as err:
        _validate(data)
    for f in fragments:
        assert f in str(err.value), (f, str(err.value))


def test_sections_and_kinds_are_declared_once():
    reg = _registry()
    with pytest.raises(ConfigError, match="already declared by plugin 'p'"):
        reg.add_section(Section("widget", kind="widget"), "q")
    with pytest.raises(ConfigError, match="already declared by the host"):
        reg.add_section(Section("engine"), "q")
    with pytest.raises(ConfigError, match="undeclared component kind 'sprocket'"):
        reg.add_section(Section("sprocket", kind="sprocket"), "q")
    with pytest.raises(ConfigError, match="declared twice"):
        reg.add_kind("widget", Component, "q")
    with pytest.raises(ConfigError, match="a kind no plugin declares"):
        reg.register("sprocket", Gear, "q")

    class NotAWidget(Component):
        kind, name = "widget", "bolt"

    with pytest.raises(ConfigError, match="expected a subclass of"):
        reg.register("widget", NotAWidget, "q")


def test_sections_need_stage_two():
    from cmm_bt.config.loader import parse_strategy

    st = parse_strategy({**BASE, "widget": {"name": "gear"}}, file="s.yaml")
    assert st.raw_sections == {"widget": {"name": "gear"}}
    with pytest.raises(RuntimeError, match="stage 2"):
        st.section("widget")
