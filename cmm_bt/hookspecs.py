"""Every hook cmm-bt calls, in lifecycle order.

Plugins implement these with :data:`cmm_bt.hookimpl` and are found through the entry-point group
``cmm_bt`` (see ``docs/writing-plugins.md`` for the discovery order).  All hooks are prefixed
``cmm_bt_``; the host calls them only through :class:`cmm_bt.plugins.Hooks`, keyword-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import typer
    from rich.console import Console

    from cmm_bt.components import DecisionState, Quotes
    from cmm_bt.data.schema import MarketData
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec

hookspec = pluggy.HookspecMarker("cmm_bt")
hookimpl = pluggy.HookimplMarker("cmm_bt")

Register = Callable[..., None]
"""``register(cls, aliases=())``: hand a component class (and optional alias names) to the host."""


# ------------------------------------------------------------------------------ initialisation
@hookspec(historic=True)
def cmm_bt_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add new hook specifications (for plugins that offer hooks of their own).

    :param pluginmanager: the run's plugin manager; call ``add_hookspecs`` on it.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_commands(app: "typer.Typer") -> None:
    """Add sub-commands to the ``cmm-bt`` command line.

    :param app: the root Typer application.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------- registration
# Each register hook receives a host-owned ``register(cls, aliases=())`` callback.  Keep them cheap:
# no torch or transformers imports here; import lazily inside the component.


@hookspec
def cmm_bt_register_data_sources(register: Register) -> None:
    """Register :class:`~cmm_bt.components.DataSource` classes (kind ``data``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_teachers(register: Register) -> None:
    """Register :class:`~cmm_bt.components.Teacher` classes (kind ``teacher``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_probes(register: Register) -> None:
    """Register :class:`~cmm_bt.components.Probe` classes (kind ``probe``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_students(register: Register) -> None:
    """Register :class:`~cmm_bt.components.Student` classes (kind ``student``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_experts(register: Register) -> None:
    """Register :class:`~cmm_bt.components.MoE` classes (kind ``moe``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_execution(register: Register) -> None:
    """Register :class:`~cmm_bt.components.ExecutionPolicy` classes (kind ``execution``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_reporters(register: Register) -> None:
    """Register :class:`~cmm_bt.components.Reporter` classes (kind ``reporter``).

    .. versionadded:: 0.1
    """


# ------------------------------------------------------------------------------------- the run
@hookspec
def cmm_bt_before_run(run: "RunSpec") -> None:
    """Called once the strategy is validated and the data loaded, before any model or replay.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_compute_signals(run: "RunSpec", market: "MarketData", grid: "np.ndarray") -> "pd.DataFrame | None":
    """Compute per-decision-step model outputs before the replay (batch, past data only).

    :param run: the validated run (strategy sections, dataset, splits, cache directory).
    :param market: the whole dataset (all splits; use ``run.splits`` to fit on training data).
    :param grid: local decision times (ns) of the replay, ascending.
    :returns: a DataFrame with one row per grid time, columns are signal names (``pred_mid`` ...),
        or None when this plugin has nothing to add.  Results of all plugins are joined; a
        duplicate column name is an error.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_on_quote(state: "DecisionState", quotes: "Quotes") -> None:
    """After the execution policy quoted at a decision step (Python, once per step).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_on_fill(fill: dict[str, Any]) -> None:
    """For each fill, once the agent learns of it; ``fill`` has the keys of ``FILL_COLUMNS``.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_extra_metrics(run: "RunSpec", result: "RunResult") -> "dict[str, float] | None":
    """Contribute flat keys to ``metrics.json`` (e.g. ``pred_mae_mid``); duplicates are an error.

    Exception: a model plugin whose predictions were computed in batch before the replay may return
    ``decision_latency_us_p50/p99`` (the per-decision latency its model would have live); the
    engine's policy-call latency is then kept as ``policy_latency_us_p50/p99``.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_after_run(run: "RunSpec", result: "RunResult") -> None:
    """After metrics are computed and the run folder is written.

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_on_run_error(run: "RunSpec", error: BaseException) -> None:
    """When the run fails (any exception, before it propagates).

    .. versionadded:: 0.1
    """


# ------------------------------------------------------------------------------------- reports
@hookspec
def cmm_bt_report_sections(result: "RunResult", console: "Console") -> None:
    """Print extra sections after the main report (like ``pytest_terminal_summary``).

    .. versionadded:: 0.1
    """
