"""Every hook cmm-bt calls, in lifecycle order.

Plugins implement these with :data:`cmm_bt.hookimpl` and are found through the entry-point group
``cmm_bt`` (see ``docs/writing-plugins.md`` for the discovery order).  All hooks are prefixed
``cmm_bt_``; the host calls them only through :class:`cmm_bt.plugins.Hooks`, keyword-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from cmm_bt.components import DecisionState, Quotes
    from cmm_bt.formatting import MetricRow
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec
    from cmm_bt.sections import Section

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
def cmm_bt_register_execution(register: Register) -> None:
    """Register :class:`~cmm_bt.components.ExecutionPolicy` classes (kind ``execution``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_reporters(register: Register) -> None:
    """Register :class:`~cmm_bt.components.Reporter` classes (kind ``reporter``).

    .. versionadded:: 0.1
    """


@hookspec
def cmm_bt_register_kinds(register: "Callable[[str, type], None]") -> None:
    """Declare new component kinds: ``register(kind, base_class)``.

    Components of the kind must subclass ``base_class``, which says what the plugin driving the
    kind calls (e.g. a ``regime-model`` kind whose base declares ``classify``).

    .. versionadded:: 0.2
    """


@hookspec
def cmm_bt_register_components(register: Register) -> None:
    """Register component classes of any kind: ``register(cls, aliases=())``; the kind is ``cls.kind``.

    .. versionadded:: 0.2
    """


@hookspec
def cmm_bt_register_sections(register: "Callable[[Section], None]") -> None:
    """Declare top-level strategy sections (:class:`~cmm_bt.sections.Section`): their shape, the
    component kind they name and the pipeline stages they add to a run.

    .. versionadded:: 0.2
    """


# ------------------------------------------------------------------------------------- the run
@hookspec
def cmm_bt_before_run(run: "RunSpec") -> None:
    """Called once the strategy is validated and the data loaded, before any model or replay.

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
    """Contribute flat keys to ``metrics.json``; a key contributed twice is an error.

    (Model pipelines report their own metrics through their :class:`~cmm_bt.pipeline.Signals`.)

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
def cmm_bt_study_columns(metrics: "list[str]") -> "list[MetricRow] | None":
    """Extra columns of ``cmm-bt compare``'s study table, given the metric keys the runs report.

    :returns: :class:`~cmm_bt.formatting.MetricRow` rows (placed after the key metrics), or None.

    .. versionadded:: 0.2
    """


@hookspec
def cmm_bt_study_notes(result: "RunResult") -> "dict[str, Any] | None":
    """Facts about one of a study's runs that its tables and metrics hold but the study table does
    not show (e.g. what a model found on the training split): ``{label: value}`` with JSON-able
    values. ``cmm-bt study`` lists them per dataset and strategy in ``study.md`` and ``notes.json``.

    .. versionadded:: 0.3
    """


@hookspec
def cmm_bt_report_sections(result: "RunResult", console: "Console") -> None:
    """Print extra sections after the main report (like ``pytest_terminal_summary``).

    .. versionadded:: 0.1
    """
