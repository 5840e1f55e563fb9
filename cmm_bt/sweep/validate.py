"""Validate a sweep's trials before the first one runs, with a did-you-mean for a mistyped key.

Each trial's config goes through what ``prepare_run`` does before it loads data: ``extends:``
composition, the dataset's engine defaults, the overrides, and both validation stages with the
session's registry.  A key the schema does not know gets the closest known key as a suggestion,
found by walking the strategy models (host fields, ``engine``, component ``params``, plugin sections)
and the keys the composed file already has.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from cmm_bt.config.loader import apply_overrides, compose, deep_merge, parse_strategy, validate_strategy
from cmm_bt.data.manifest import load_manifest
from cmm_bt.errors import CmmBtError, ConfigError

if TYPE_CHECKING:
    from cmm_bt.api import Session
    from cmm_bt.registry import Registry


def resolve_config(session: "Session", strategy: Path, overrides: list[str], dataset: str | None):
    """``(strategy, resolved, manifest)`` of one run, validated, without loading its data."""
    overrides = list(overrides) + ([f"dataset={dataset}"] if dataset is not None else [])
    composed = compose(strategy)
    name = parse_strategy(apply_overrides(composed, overrides), file=strategy).dataset
    manifest = load_manifest(name, strategy_dir=strategy.resolve().parent)
    data = apply_overrides(deep_merge({"engine": dict(manifest.engine_defaults)}, composed), overrides)
    parsed, resolved = validate_strategy(data, file=strategy, registry=session.registry)
    return parsed, resolved, manifest


def validate_trials(
    session: "Session",
    strategy: Path,
    points: list[dict[str, Any]],
    *,
    base_overrides: list[str],
    dataset: str | None,
    swept_keys: list[str],
    describe,
    to_overrides,
) -> dict[str, Any]:
    """Validate every point; ``{dataset name: overrides of its first trial}`` (for warming the data cache).

    :raises CmmBtError: the first bad trial, naming the file, the key and the trial.
    """
    composed = compose(strategy)
    for key in [*swept_keys, *(o.partition("=")[0].strip() for o in base_overrides)]:
        hint = suggest_key(key, composed, session.registry)
        if hint:
            raise ConfigError(f"unknown key; did you mean {hint!r}?", file=strategy, key=key)
    datasets: dict[str, Any] = {}
    for point in points:
        overrides = [*base_overrides, *to_overrides(point)]
        try:
            _, _, manifest = resolve_config(session, strategy, overrides, dataset)
        except CmmBtError as err:
            raise type(err)(f"{err} (in the trial {describe(point)})") from None
        datasets.setdefault(manifest.name, overrides)
    return datasets


# ------------------------------------------------------------------------------- did you mean
def _host_fields() -> set[str]:
    from cmm_bt.config.strategy import Strategy

    return set(Strategy.model_fields) | {"extends"}


def _component_kind(section: str, registry: "Registry") -> str | None:
    """The component kind a top-level section names (``execution``; plugin sections that hold one)."""
    if section == "execution":
        return "execution"
    spec = getattr(registry, "sections", {}).get(section)
    if spec is not None:
        return getattr(spec, "kind", None)
    try:  # older hosts: a fixed table of component sections
        from cmm_bt.config.strategy import COMPONENT_SECTIONS  # type: ignore[attr-defined]
    except ImportError:
        return None
    return COMPONENT_SECTIONS.get(section)


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    out = {}
    for name, info in model.model_fields.items():
        out[name] = info.annotation
        if info.alias:
            out[info.alias] = info.annotation
    return out


def _forbids_extra(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "forbid"


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():  # Optional[Model]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def suggest_key(key: str, composed: dict[str, Any], registry: "Registry") -> str | None:
    """The closest valid path when ``key`` names something the strategy schema rejects, else None.

    Only rejections are reported: a key under a model that accepts anything, or under a component
    the registry does not know (validation says so itself), gives None.
    """
    from cmm_bt.engine.config import EngineConfig

    parts = key.split(".")
    head = parts[0]
    known_top = _host_fields() | set(getattr(registry, "sections", {}) or {}) | set(composed)
    if head not in known_top:
        return _fix(parts, 0, known_top)
    if len(parts) == 1:
        return None
    node = composed.get(head)
    if head == "engine":
        return _walk(parts, 1, EngineConfig, node)
    kind = _component_kind(head, registry)
    if kind is not None:
        known = {"name", "params"}
        if parts[1] not in known:
            return _fix(parts, 1, known)
        if parts[1] != "params" or len(parts) < 3 or not isinstance(node, dict) or not node.get("name"):
            return None
        try:
            cls = registry.get(kind, node["name"])
        except CmmBtError:
            return None
        return _walk(parts, 2, cls.Config, node.get("params"))
    section = getattr(registry, "sections", {}).get(head)
    model = getattr(section, "model", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return _walk(parts, 1, model, node)
    return None


def _walk(parts: list[str], i: int, model: type[BaseModel] | None, node: Any) -> str | None:
    while i < len(parts) and model is not None:
        fields = _fields(model)
        present = set(node) if isinstance(node, dict) else set()
        if parts[i] not in fields and parts[i] not in present:
            return _fix(parts, i, set(fields) | present) if _forbids_extra(model) else None
        model = _as_model(fields.get(parts[i]))
        node = node.get(parts[i]) if isinstance(node, dict) else None
        i += 1
    return None


def _fix(parts: list[str], i: int, known: set[str]) -> str | None:
    close = difflib.get_close_matches(parts[i], sorted(known), n=1, cutoff=0.6)
    if not close:
        return None
    return ".".join([*parts[:i], close[0], *parts[i + 1:]])
