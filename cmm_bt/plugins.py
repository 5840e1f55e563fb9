"""Build the plugin manager (once per run) and the typed facade the host calls hooks through.

Discovery order (documented in docs/writing-plugins.md):

1. ``DEFAULT_PLUGINS`` — built into the host (none of the components: those are plugins);
2. the entry-point group ``cmm_bt`` of every installed distribution, our own ``cmm_bt_plugins``
   included (``CMM_BT_LOAD_PLUGINS=a,b`` loads only those entry-point names, ``''`` none);
3. modules named in ``CMM_BT_PLUGINS`` (comma-separated import names);
4. every ``*.py`` file in the plugins directory (``--plugins-dir`` or ``CMM_BT_PLUGINS_DIR``).

``CMM_BT_DISABLE_PLUGINS=a,b`` blocks plugins by name (entry-point name, module name or file
stem); ``CMM_BT_TRACE_PLUGINS=1`` prints every hook call to stderr.  A plugin that fails to load is
reported once on stderr and kept in ``pm.broken`` (:class:`BrokenPlugin`) instead of failing the
command.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from cmm_bt import hookspecs
from cmm_bt.errors import CmmBtError
from cmm_bt.registry import Registry

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.components import DecisionState, Quotes
    from cmm_bt.formatting import MetricRow
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec

ENTRY_POINT_GROUP = "cmm_bt"
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = ()

#: register hook name -> component kind, for the host's own kinds
REGISTER_HOOKS: dict[str, str] = {
    "cmm_bt_register_data_sources": "data",
    "cmm_bt_register_execution": "execution",
    "cmm_bt_register_reporters": "reporter",
}


@dataclass(frozen=True)
class PluginSettings:
    """Where to look for plugins; ``from_env`` reads the ``CMM_BT_*`` variables."""

    load_entry_points: bool = True
    only_entry_points: tuple[str, ...] | None = None
    extra_modules: tuple[str, ...] = ()
    plugins_dir: Path | None = None
    disabled: tuple[str, ...] = ()
    trace: bool = False

    @classmethod
    def from_env(cls, plugins_dir: Path | None = None, disabled: tuple[str, ...] = ()) -> "PluginSettings":
        env = os.environ
        split = lambda v: tuple(x.strip() for x in v.split(",") if x.strip())  # noqa: E731
        only = split(env["CMM_BT_LOAD_PLUGINS"]) if "CMM_BT_LOAD_PLUGINS" in env else None
        pdir = plugins_dir or (Path(env["CMM_BT_PLUGINS_DIR"]) if env.get("CMM_BT_PLUGINS_DIR") else None)
        return cls(
            only_entry_points=only,
            extra_modules=split(env.get("CMM_BT_PLUGINS", "")),
            plugins_dir=pdir,
            disabled=split(env.get("CMM_BT_DISABLE_PLUGINS", "")) + tuple(disabled),
            trace=env.get("CMM_BT_TRACE_PLUGINS", "") not in ("", "0"),
        )


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to load (import error, bad hook implementation): reported once on stderr,
    listed by ``cmm-bt plugins`` and named by the unknown-component error of a run that needs it."""

    name: str
    #: ``entry point DIST:NAME``, the file path, or ``CMM_BT_PLUGINS``
    origin: str
    #: ``ExceptionType: message``, one line
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.origin}) failed to load: {self.error}"


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers where each plugin came from and which ones failed to load."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.broken: list[BrokenPlugin] = []
        self.origins: dict[str, str] = {}
        self._dists: list[tuple[Any, Any]] = []

    def list_plugin_distinfo(self) -> list[tuple[Any, Any]]:
        return [*super().list_plugin_distinfo(), *self._dists]


def broken_plugins(pm: pluggy.PluginManager) -> list[BrokenPlugin]:
    """The plugins that failed to load into ``pm`` (empty for a plain pluggy manager)."""
    return list(getattr(pm, "broken", ()))


def broken_hint(pm: pluggy.PluginManager) -> str:
    """``"; plugin 'x' (origin) failed to load: ..."`` for every broken plugin, or ``""``: appended to an
    unknown-component error, since the missing component may be one a broken plugin would register."""
    return "".join(f"; {b}" for b in broken_plugins(pm))


_reported: set[str] = set()


def _report(line: str) -> None:
    """Write ``line`` to stderr once per process (the CLI builds the plugin manager more than once)."""
    line = " ".join(line.split())
    if line not in _reported:
        _reported.add(line)
        sys.stderr.write(line + "\n")


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _add(pm: PluginManager, name: str, origin: str, load: Any, dist: Any = None) -> None:
    """Load a plugin with ``load()`` and register it as ``name``; a failure marks it broken instead of
    raising, so one bad plugin never stops the commands that do not need it."""
    try:
        plugin = load()
        pm.register(plugin, name=name)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any error at import time is the plugin's
        _mark_broken(pm, BrokenPlugin(name, origin, _one_line(err)))
        return
    pm.origins[name] = origin
    if dist is not None:
        pm._dists.append((plugin, dist))
    _warn_unmarked(plugin, name, origin)


def _mark_broken(pm: PluginManager, broken: BrokenPlugin) -> None:
    if all(b.name != broken.name for b in pm.broken):
        pm.broken.append(broken)
    _report(f"warning: {broken}")


def _warn_unmarked(plugin: Any, name: str, origin: str) -> None:
    """Pluggy silently ignores ``cmm_bt_*`` functions without ``@hookimpl``; say so."""
    marker = f"{ENTRY_POINT_GROUP}_impl"
    unmarked = sorted(
        attr for attr in dir(plugin)
        if attr.startswith(f"{ENTRY_POINT_GROUP}_") and callable(getattr(plugin, attr, None))
        and not isinstance(getattr(plugin, attr), type) and getattr(getattr(plugin, attr), marker, None) is None
    )
    if unmarked:
        _report(f"warning: plugin {name!r} ({origin}) defines {', '.join(unmarked)} without @hookimpl; "
                "pluggy ignores them (decorate them with @cmm_bt.hookimpl)")


def build_plugin_manager(settings: PluginSettings | None = None) -> PluginManager:
    """A fresh plugin manager with every plugin loaded in the documented order.

    A plugin that fails to import or implements an unknown hook is not registered: it is reported once
    on stderr and recorded in ``pm.broken`` (:func:`broken_plugins`), and only a run that names one of
    its components fails (:func:`broken_hint`).  A missing plugins directory is still an error.
    """
    settings = settings or PluginSettings.from_env()
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name in settings.disabled:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    if settings.load_entry_points:
        _load_entry_points(pm, settings.only_entry_points)
    for module in settings.extra_modules:
        if not pm.is_blocked(module) and pm.get_plugin(module) is None:
            _add(pm, module, "CMM_BT_PLUGINS", lambda m=module: importlib.import_module(m))
    if settings.plugins_dir is not None:
        _load_plugins_dir(pm, settings.plugins_dir)
    _drop_unknown_hooks(pm)
    if settings.trace:
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def _drop_unknown_hooks(pm: PluginManager) -> None:
    """What ``pm.check_pending()`` would raise for, per plugin: unregister it and mark it broken."""
    for hook_name in sorted(n for n in vars(pm.hook) if not n.startswith("_")):
        hook = getattr(pm.hook, hook_name)
        if hook.has_spec():
            continue
        for impl in hook.get_hookimpls():
            if not impl.optionalhook and pm.get_plugin(impl.plugin_name) is not None:
                pm.unregister(name=impl.plugin_name)
                origin = pm.origins.pop(impl.plugin_name, "?")
                pm._dists = [(p, d) for p, d in pm._dists if p is not impl.plugin]
                _mark_broken(pm, BrokenPlugin(impl.plugin_name, origin, f"implements the unknown hook {hook_name!r}"))


def _load_entry_points(pm: PluginManager, only: tuple[str, ...] | None) -> None:
    """Entry points of group ``cmm_bt`` (like ``pm.load_setuptools_entrypoints``, one plugin at a time:
    blocked and already registered names are skipped, the distribution is recorded)."""
    import importlib.metadata

    dists = list(importlib.metadata.distributions())
    for wanted in only if only is not None else (None,):
        for dist in dists:
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or (wanted is not None and ep.name != wanted):
                    continue
                if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None or ep.name in {b.name for b in pm.broken}:
                    continue
                origin = f"entry point {dist.metadata['name']}:{ep.name}"
                _add(pm, ep.name, origin, ep.load, dist)


def _load_plugins_dir(pm: PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        raise CmmBtError("plugins directory not found", file=folder)
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith("_") or pm.is_blocked(name):
            continue
        _add(pm, name, str(path), lambda p=path: _exec_file(p))


def _exec_file(path: Path) -> Any:
    """Import one plugin file as module ``cmm_bt_local_plugins.<stem>`` (in ``sys.modules`` while it runs,
    so dataclasses and pydantic models defined in it work; removed again if it fails)."""
    module_name = f"cmm_bt_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


class Hooks:
    """Typed, keyword-only facade over ``pm.hook``: the only way the host calls plugins."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    def build_registry(self) -> Registry:
        """Call the register hooks (kinds, then components, then sections), recording which plugin
        registered what.  A plugin whose register hook raises is reported once and counted as
        broken (its components are missing); the others' registrations stand."""
        registry = Registry(broken=broken_plugins(self.pm))
        calls = [("cmm_bt_register_kinds", lambda p: lambda kind, base: registry.add_kind(kind, base, p))]
        calls += [(h, lambda p, k=kind: lambda cls, aliases=(): registry.register(k, cls, p, aliases)) for h, kind in REGISTER_HOOKS.items()]
        calls += [("cmm_bt_register_components", lambda p: lambda cls, aliases=(): registry.register(cls.kind, cls, p, aliases)),
                  ("cmm_bt_register_sections", lambda p: lambda section: registry.add_section(section, p))]
        failed: set[str] = set()
        for hook_name, make_register in calls:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in failed:
                    continue
                try:
                    impl.function(make_register(impl.plugin_name))
                except Exception as err:  # noqa: BLE001 - one plugin's bug must not break the others
                    failed.add(impl.plugin_name)
                    origin = getattr(self.pm, "origins", {}).get(impl.plugin_name, "plugin")
                    broken = BrokenPlugin(impl.plugin_name, origin, f"{hook_name}: {type(err).__name__}: {' '.join(str(err).split())}")
                    registry.broken.append(broken)
                    _report(f"warning: {broken}")
        return registry

    def register_commands(self, *, app: Any) -> None:
        self.pm.hook.cmm_bt_register_commands(app=app)

    def before_run(self, *, run: "RunSpec") -> None:
        self.pm.hook.cmm_bt_before_run(run=run)

    def on_quote(self, *, state: "DecisionState", quotes: "Quotes") -> None:
        self.pm.hook.cmm_bt_on_quote(state=state, quotes=quotes)

    def on_fill(self, *, fill: dict) -> None:
        self.pm.hook.cmm_bt_on_fill(fill=fill)

    def has_impls(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def extra_metrics(self, *, run: "RunSpec", result: "RunResult") -> dict[str, float]:
        """Every plugin's extra metrics; a key may be contributed once and never replaces the run's."""
        out: dict[str, float] = {}
        for part in self.pm.hook.cmm_bt_extra_metrics(run=run, result=result):
            for key, value in (part or {}).items():
                if key in out or key in result.metrics:
                    raise RuntimeError(f"metric {key!r} contributed twice")
                out[key] = value
        return out

    def study_columns(self, *, metrics: list[str]) -> list["MetricRow"]:
        """Plugins' extra study-table columns for runs reporting ``metrics``."""
        return [row for part in self.pm.hook.cmm_bt_study_columns(metrics=metrics) for row in (part or [])]

    def study_notes(self, *, result: "RunResult") -> dict[str, Any]:
        """Every plugin's notes on a study run (``cmm_bt_study_notes``), merged in plugin order."""
        out: dict[str, Any] = {}
        for part in self.pm.hook.cmm_bt_study_notes(result=result):
            out.update(part or {})
        return out

    def after_run(self, *, run: "RunSpec", result: "RunResult") -> None:
        self.pm.hook.cmm_bt_after_run(run=run, result=result)

    def on_run_error(self, *, run: "RunSpec", error: BaseException) -> None:
        self.pm.hook.cmm_bt_on_run_error(run=run, error=error)

    def report_sections(self, *, result: "RunResult", console: "Console") -> None:
        self.pm.hook.cmm_bt_report_sections(result=result, console=console)


def plugin_table(pm: pluggy.PluginManager, registry: Registry) -> list[dict[str, Any]]:
    """Name, origin, version, hooks and registered components of every plugin, then the broken ones
    with their error (for ``cmm-bt plugins``)."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    origins = getattr(pm, "origins", {})
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        components = [f"{r.kind}:{r.name}" for r in registry.registrations() if r.plugin == name]
        rows.append({
            "name": name,
            "status": "ok",
            "origin": origins.get(name, ""),
            "distribution": dist.metadata["name"] if dist else "(local)",
            "version": dist.version if dist else "",
            "hooks": hooks,
            "components": components,
            "error": None,
        })
    for b in sorted(broken_plugins(pm), key=lambda b: b.name):
        dist_name = b.origin.removeprefix("entry point ").rsplit(":", 1)[0] if b.origin.startswith("entry point ") else "(local)"
        rows.append({"name": b.name, "status": "broken", "origin": b.origin, "distribution": dist_name,
                     "version": "", "hooks": [], "components": [], "error": b.error})
    return rows
