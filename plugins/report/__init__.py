"""Built-in reporters: ``rich`` (terminal report) and ``plots`` (PNG charts).

Import-light: matplotlib is imported only when ``plots`` runs.
"""

from __future__ import annotations

from cmm_bt import hookimpl


@hookimpl
def cmm_bt_register_reporters(register):
    from cmm_bt_plugins.report.plots import PlotReport
    from cmm_bt_plugins.report.rich_report import RichReport

    register(RichReport)
    register(PlotReport)
