"""Load a strategy file: ``extends:`` composition, ``-o key=value`` overrides, two-stage validation."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from cmm_bt.config.errors import render_validation_error
from cmm_bt.config.strategy import HOST_FIELDS, ComponentSpec, Strategy
from cmm_bt.config.yamlio import parse_scalar, read_yaml_mapping
from cmm_bt.errors import ConfigError
from cmm_bt.registry import Registry


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: Longest ``extends:`` chain (a file, its parent, the parent's parent ...).
MAX_EXTENDS_DEPTH = 64


def compose(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and the files it ``extends:`` (relative to it), later files winning."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError(f"extends cycle: {cycle}", file=_chain[-1], key="extends")
    if len(_chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"extends chain longer than {MAX_EXTENDS_DEPTH} files ({_chain[0].name} -> "
                          f"{_chain[1].name} -> ... -> {path.name})", file=_chain[-1], key="extends")
    data = read_yaml_mapping(path)
    parents = data.pop("extends", None)
    if parents is None:
        return data
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError("must be a file path or a list of file paths", file=path, key="extends")
    merged: dict[str, Any] = {}
    for parent in parents:
        parent_path = (path.parent / parent)
        if not parent_path.exists():
            raise ConfigError(f"extended file not found: {parent}", file=path, key="extends")
        merged = deep_merge(merged, compose(parent_path, (*_chain, path)))
    return deep_merge(merged, data)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], *, source: str = "-o") -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML scalars / flow collections)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.path=value", file=source)
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])} is not a mapping", file=source)
            node = child
        node[parts[-1]] = parse_scalar(raw)
    return out


def load_strategy_dict(path: Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The composed and overridden strategy mapping, not yet validated."""
    return apply_overrides(compose(Path(path)), overrides)


def parse_strategy(data: dict[str, Any], *, file: Path | str) -> Strategy:
    """Stage 1: the envelope's shape."""
    try:
        return Strategy(**data)
    except ValidationError as err:
        raise ConfigError(render_validation_error(err), file=file) from None
    except TypeError as err:  # e.g. a non-string key
        raise ConfigError(str(err), file=file) from None


def validate_components(strategy: Strategy, registry: Registry, *, file: Path | str) -> None:
    """Stage 2: plugin sections are declared and valid; every named component exists and its params
    validate with its own Config; ``engine`` validates."""
    from cmm_bt.engine.config import EngineConfig

    strategy._sections = _validate_sections(strategy, registry, file=file)
    registry.validate_params("execution", strategy.execution.name, strategy.execution.params, where=str(file), key="execution")
    for i, spec in enumerate(strategy.reporters):
        registry.validate_params("reporter", spec.name, spec.params, where=str(file), key=f"reporters.{i}")
    try:
        EngineConfig(**strategy.engine)
    except ValidationError as err:
        raise ConfigError(render_validation_error(err, prefix="engine"), file=file) from None


def _validate_sections(strategy: Strategy, registry: Registry, *, file: Path | str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in strategy.raw_sections.items():
        section = registry.sections.get(key)
        if section is None:
            known = sorted({*HOST_FIELDS, *registry.sections})
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key{hint} (neither a host key nor a section an installed plugin declares; known: {', '.join(known)})", file=file, key=key)
        if raw is None:
            continue
        try:
            spec = section.model(**raw) if isinstance(raw, dict) else section.model.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(render_validation_error(err, prefix=key), file=file) from None
        if section.kind is not None and isinstance(spec, ComponentSpec):
            registry.validate_params(section.kind, spec.name, spec.params, where=str(file), key=key)
        out[key] = spec
    return out


def load_strategy(path: Path, overrides: Iterable[str] = (), registry: Registry | None = None) -> tuple[Strategy, dict[str, Any]]:
    """Compose, override and validate a strategy file (both stages when ``registry`` is given)."""
    return validate_strategy(load_strategy_dict(path, overrides), file=path, registry=registry)


def validate_strategy(data: dict[str, Any], *, file: Path | str, registry: Registry | None = None) -> tuple[Strategy, dict[str, Any]]:
    """Both validation stages (stage 2 only when ``registry`` is given) of a composed mapping."""
    strategy = parse_strategy(data, file=file)
    if registry is not None:
        validate_components(strategy, registry, file=file)
    return strategy, data
