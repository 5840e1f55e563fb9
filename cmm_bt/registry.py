"""The host-owned registry of component kinds, component classes and strategy sections, filled
through the ``cmm_bt_register_*`` hooks."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from pydantic import ValidationError

from cmm_bt.components import HOST_KINDS, Component
from cmm_bt.errors import ConfigError

if TYPE_CHECKING:
    from cmm_bt.sections import Section


@dataclass(frozen=True)
class Registration:
    """One registered component class, who registered it and under which names."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    aliases: tuple[str, ...] = ()


@dataclass
class Registry:
    """Component kinds (with their base classes), component classes by kind and name (aliases
    included), the strategy sections plugins declared, and the plugins that failed to load."""

    bases: dict[str, type[Component]] = field(default_factory=lambda: dict(HOST_KINDS))
    sections: dict[str, "Section"] = field(default_factory=dict)
    section_owner: dict[str, str] = field(default_factory=dict)
    broken: list = field(default_factory=list)
    _by_kind: dict[str, dict[str, Registration]] = field(default_factory=lambda: {k: {} for k in HOST_KINDS})

    @property
    def kinds(self) -> list[str]:
        return list(self.bases)

    def add_kind(self, kind: str, base: type[Component], plugin: str) -> None:
        """Declare a component kind whose classes must derive from ``base``."""
        if not (isinstance(base, type) and issubclass(base, Component)):
            raise ConfigError(f"plugin {plugin!r} declared kind {kind!r} with base {base!r}; expected a cmm_bt.components.Component subclass")
        if kind in self.bases and self.bases[kind] is not base:
            raise ConfigError(f"component kind {kind!r} declared twice (by plugin {plugin!r} with another base class)")
        self.bases[kind] = base
        self._by_kind.setdefault(kind, {})

    def add_section(self, section: "Section", plugin: str) -> None:
        """Declare a top-level strategy section; its kind must be declared already."""
        from cmm_bt.config.strategy import HOST_FIELDS

        if section.name in HOST_FIELDS or section.name in self.sections:
            owner = "the host" if section.name in HOST_FIELDS else f"plugin {self.section_owner[section.name]!r}"
            raise ConfigError(f"plugin {plugin!r} declared strategy section {section.name!r}, already declared by {owner}")
        if section.kind is not None and section.kind not in self.bases:
            raise ConfigError(f"plugin {plugin!r}: section {section.name!r} names the undeclared component kind {section.kind!r}")
        self.sections[section.name] = section
        self.section_owner[section.name] = plugin

    def register(self, kind: str, cls: type[Component], plugin: str, aliases: Iterable[str] = ()) -> None:
        """Add ``cls`` under ``cls.name`` and its aliases; a name clash or wrong base class is an error."""
        if kind not in self.bases:
            raise ConfigError(f"plugin {plugin!r} registered {cls!r} as a {kind!r} component, a kind no plugin declares (known: {', '.join(self.bases)})")
        base = self.bases[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ConfigError(f"plugin {plugin!r} registered {cls!r} as a {kind} component; expected a subclass of {base.__module__}.{base.__qualname__}")
        if not cls.name:
            raise ConfigError(f"plugin {plugin!r}: {cls.__qualname__} has no `name`")
        reg = Registration(kind, cls.name, cls, plugin, tuple(aliases))
        table = self._by_kind[kind]
        for n in (cls.name, *reg.aliases):
            if n in table and table[n].cls is not cls:
                raise ConfigError(f"{kind} component name {n!r} registered twice: by {table[n].plugin!r} and {plugin!r}")
            table[n] = reg

    def names(self, kind: str) -> list[str]:
        """Primary names of the registered components of ``kind``, sorted."""
        return sorted({r.name for r in self._by_kind.get(kind, {}).values()})

    def registrations(self, kind: str | None = None) -> list[Registration]:
        kinds = [kind] if kind else list(self.bases)
        seen: dict[tuple[str, str], Registration] = {}
        for k in kinds:
            for r in self._by_kind[k].values():
                seen[(k, r.name)] = r
        return sorted(seen.values(), key=lambda r: (r.kind, r.name))

    def get(self, kind: str, name: str, *, where: str | None = None, key: str | None = None) -> type[Component]:
        """The class registered as ``name``; an unknown name is a :class:`ConfigError` with a did-you-mean."""
        table = self._by_kind.get(kind, {})
        if name in table:
            return table[name].cls
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(self.names(kind)) or "none installed"
        failed = "".join(f"; {b}" for b in self.broken)  # a plugin that failed to load may have provided it
        raise ConfigError(f"unknown {kind} plugin {name!r}{hint} (known: {known}){failed}", file=where, key=key)

    def validate_params(self, kind: str, name: str, params: dict[str, Any] | None, *, where: str | None = None, key: str | None = None) -> Component.Config:
        """Validate ``params`` with the component's own ``Config`` model."""
        cls = self.get(kind, name, where=where, key=key)
        try:
            return cls.Config(**(params or {}))
        except ValidationError as err:
            from cmm_bt.config.errors import render_validation_error

            raise ConfigError(render_validation_error(err, prefix=f"{key}.params" if key else "params"), file=where) from None

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, *, where: str | None = None, key: str | None = None) -> Component:
        """Instantiate the component with validated params."""
        cls = self.get(kind, name, where=where, key=key)
        return cls(self.validate_params(kind, name, params, where=where, key=key))
