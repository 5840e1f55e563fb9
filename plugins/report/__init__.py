"""Built-in reporters: ``rich`` (terminal report), ``plots`` (PNG charts) and ``html`` (a
self-contained report.html).

Import-light: matplotlib and jinja2 are imported only when a reporter runs.
"""

from __future__ import annotations

from cmm_bt import hookimpl


@hookimpl
def cmm_bt_register_reporters(register):
    from cmm_bt_plugins.report.html import HtmlReport
    from cmm_bt_plugins.report.plots import PlotReport
    from cmm_bt_plugins.report.rich_report import RichReport

    register(RichReport)
    register(PlotReport)
    register(HtmlReport)
