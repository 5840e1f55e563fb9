"""JSON Schema of strategy files, with each component's params schema spliced in."""

from __future__ import annotations

from typing import Any

from cmm_bt.config.strategy import ComponentSpec, Strategy
from cmm_bt.registry import Registry


def _component_schema(registry: Registry, kind: str) -> dict[str, Any]:
    variants = []
    for reg in registry.registrations(kind):
        names = [reg.name, *reg.aliases]
        variants.append({
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"enum": names, "description": (reg.cls.__doc__ or "").strip().splitlines()[0] if reg.cls.__doc__ else ""},
                "params": reg.cls.Config.model_json_schema(),
            },
        })
    return {"anyOf": variants} if variants else {"type": "object"}


def strategy_schema(registry: Registry) -> dict[str, Any]:
    """The envelope's schema, with every plugin section and each component's params spliced in."""
    from cmm_bt.engine.config import EngineConfig

    schema = Strategy.model_json_schema()
    props = schema["properties"]
    props["execution"] = {"description": props["execution"].get("description", ""), **_component_schema(registry, "execution")}
    for name, section in sorted(registry.sections.items()):
        body = _component_schema(registry, section.kind) if section.kind and section.model is ComponentSpec else section.model.model_json_schema()
        props[name] = {"description": section.description or f"Plugin section ({registry.section_owner[name]})",
                       "anyOf": [body, {"type": "null"}]}
    schema["additionalProperties"] = False
    props["reporters"] = {"type": "array", "items": _component_schema(registry, "reporter"), "description": props["reporters"].get("description", "")}
    props["engine"] = {**EngineConfig.model_json_schema(), "description": props["engine"].get("description", "")}
    props["extends"] = {"description": "Base strategy file(s), relative to this file.", "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cmm-bt strategy"
    return schema
