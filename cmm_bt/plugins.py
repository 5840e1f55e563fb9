"""Build the plugin manager (once per run) and the typed facade the host calls hooks through.

Discovery order (documented in docs/writing-plugins.md):

1. ``DEFAULT_PLUGINS`` — built into the host (none of the components: those are plugins);
2. the entry-point group ``cmm_bt`` of every installed distribution, our own ``cmm_bt_plugins``
   included (``CMM_BT_LOAD_PLUGINS=a,b`` loads only those entry-point names, ``''`` none);
3. modules named in ``CMM_BT_PLUGINS`` (comma-separated import names);
4. every ``*.py`` file in the plugins directory (``--plugins-dir`` or ``CMM_BT_PLUGINS_DIR``).

``CMM_BT_DISABLE_PLUGINS=a,b`` blocks plugins by name (entry-point name, module name or file
stem); ``CMM_BT_TRACE_PLUGINS=1`` prints every hook call to stderr.
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
    import numpy as np
    import pandas as pd
    from rich.console import Console

    from cmm_bt.components import DecisionState, Quotes
    from cmm_bt.data.schema import MarketData
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec

ENTRY_POINT_GROUP = "cmm_bt"
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = ()

#: Metrics a model plugin may replace, and where the engine's own value is kept then.  Models
#: computed in batch before the replay report the per-decision latency they would have live.
OVERRIDABLE_METRICS: dict[str, str] = {
    "decision_latency_us_p50": "policy_latency_us_p50",
    "decision_latency_us_p99": "policy_latency_us_p99",
}

#: register hook name -> component kind
REGISTER_HOOKS: dict[str, str] = {
    "cmm_bt_register_data_sources": "data",
    "cmm_bt_register_teachers": "teacher",
    "cmm_bt_register_probes": "probe",
    "cmm_bt_register_students": "student",
    "cmm_bt_register_experts": "moe",
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


def build_plugin_manager(settings: PluginSettings | None = None) -> pluggy.PluginManager:
    """A fresh plugin manager with every plugin loaded in the documented order."""
    settings = settings or PluginSettings.from_env()
    pm = pluggy.PluginManager("cmm_bt")
    pm.add_hookspecs(hookspecs)
    for name in settings.disabled:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    if settings.load_entry_points:
        _load_entry_points(pm, settings.only_entry_points)
    for module in settings.extra_modules:
        if not pm.is_blocked(module):
            try:
                pm.register(importlib.import_module(module), name=module)
            except ImportError as err:
                raise CmmBtError(f"cannot import plugin module {module!r}: {err}", key="CMM_BT_PLUGINS") from None
    if settings.plugins_dir is not None:
        _load_plugins_dir(pm, settings.plugins_dir)
    if settings.trace:
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        raise CmmBtError(f"plugin {err.plugin!r} implements an unknown hook: {err}") from None
    return pm


def _load_entry_points(pm: pluggy.PluginManager, only: tuple[str, ...] | None) -> None:
    """Entry points of group ``cmm_bt`` (pluggy skips blocked names and records dist info)."""
    if only is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        for name in only:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)


def _load_plugins_dir(pm: pluggy.PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        raise CmmBtError("plugins directory not found", file=folder)
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith("_") or pm.is_blocked(name):
            continue
        spec = importlib.util.spec_from_file_location(f"cmm_bt_local_plugins.{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        pm.register(module, name=name)


class Hooks:
    """Typed, keyword-only facade over ``pm.hook``: the only way the host calls plugins."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    def build_registry(self) -> Registry:
        """Call every ``cmm_bt_register_*`` hook, recording which plugin registered what."""
        registry = Registry()
        for hook_name, kind in REGISTER_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():

                def register(cls, aliases=(), _kind=kind, _plugin=impl.plugin_name):
                    registry.register(_kind, cls, _plugin, aliases)

                impl.function(register)
        return registry

    def register_commands(self, *, app: Any) -> None:
        self.pm.hook.cmm_bt_register_commands(app=app)

    def before_run(self, *, run: "RunSpec") -> None:
        self.pm.hook.cmm_bt_before_run(run=run)

    def compute_signals(self, *, run: "RunSpec", market: "MarketData", grid: "np.ndarray") -> "pd.DataFrame | None":
        """Join every plugin's signals (one row per grid time); a duplicate column is an error."""
        import pandas as pd

        frames = [f for f in self.pm.hook.cmm_bt_compute_signals(run=run, market=market, grid=grid) if f is not None]
        if not frames:
            return None
        for f in frames:
            if len(f) != len(grid):
                raise RuntimeError(f"a plugin returned {len(f)} signal rows for {len(grid)} decision steps")
        joined = pd.concat([f.reset_index(drop=True) for f in frames], axis=1)
        dupes = joined.columns[joined.columns.duplicated()].tolist()
        if dupes:
            raise RuntimeError(f"several plugins computed the signals {dupes}")
        return joined

    def on_quote(self, *, state: "DecisionState", quotes: "Quotes") -> None:
        self.pm.hook.cmm_bt_on_quote(state=state, quotes=quotes)

    def on_fill(self, *, fill: dict) -> None:
        self.pm.hook.cmm_bt_on_fill(fill=fill)

    def has_impls(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def extra_metrics(self, *, run: "RunSpec", result: "RunResult") -> dict[str, float]:
        """Every plugin's extra metrics.  A key may be contributed once; only the decision-latency
        keys (:data:`OVERRIDABLE_METRICS`) may replace the engine's, which then stay available as
        ``policy_latency_us_p50/p99``."""
        out: dict[str, float] = {}
        for part in self.pm.hook.cmm_bt_extra_metrics(run=run, result=result):
            for key, value in (part or {}).items():
                if key in out or (key in result.metrics and key not in OVERRIDABLE_METRICS):
                    raise RuntimeError(f"metric {key!r} contributed twice")
                out[key] = value
        for key, engine_key in OVERRIDABLE_METRICS.items():
            if key in out and key in result.metrics:
                out[engine_key] = result.metrics[key]
        return out

    def after_run(self, *, run: "RunSpec", result: "RunResult") -> None:
        self.pm.hook.cmm_bt_after_run(run=run, result=result)

    def on_run_error(self, *, run: "RunSpec", error: BaseException) -> None:
        self.pm.hook.cmm_bt_on_run_error(run=run, error=error)

    def report_sections(self, *, result: "RunResult", console: "Console") -> None:
        self.pm.hook.cmm_bt_report_sections(result=result, console=console)


def plugin_table(pm: pluggy.PluginManager, registry: Registry) -> list[dict[str, Any]]:
    """Name, version, hooks and registered components of every plugin (for ``cmm-bt plugins``)."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        components = [f"{r.kind}:{r.name}" for r in registry.registrations() if r.plugin == name]
        rows.append({
            "name": name,
            "distribution": dist.project_name if dist else "(local)",
            "version": dist.version if dist else "",
            "hooks": hooks,
            "components": components,
        })
    return rows
