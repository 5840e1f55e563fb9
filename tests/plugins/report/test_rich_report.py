"""The terminal report prints the key numbers, episodes, sparkline and extra tables."""

from __future__ import annotations

import subprocess
import sys

import pluggy
import pytest
from pydantic import ValidationError
from rich.console import Console

from cmm_bt import hookspecs
from cmm_bt.formatting import SPARK_BLOCKS, sparkline
from cmm_bt_plugins.report.plots import PlotReport
from cmm_bt_plugins.report.rich_report import RichReport


def render(result, **params) -> str:
    console = Console(record=True, width=120)
    RichReport(RichReport.Config(**params)).report(result, console)
    return console.export_text()


def test_report_shows_header_and_key_metrics(sample_result):
    text = render(sample_result)
    for needle in ("fixed-spread", "cme-gc", "split: test", "GCM3", "2023-05-01 00:00:00", "Summary",
                   "PnLMAP", "Sharpe", "Sortino", "Max drawdown", "Markout 1 s", "p99"):
        assert needle in text, needle
    assert "1,000.00 USD" in text  # total PnL
    assert "500.00 USD" in text  # EPnL
    assert "50.0 %" in text  # fill ratio 6 / 12
    assert "200,000" in text  # events / s = 50,000 / 0.25


def test_report_lists_episodes(sample_result):
    text = render(sample_result)
    assert "Episodes" in text
    assert "PnL USD" in text
    assert "1,234.50" in text and "-234.50" in text
    assert "05-01 01:00" in text  # second episode's start
    assert "14m59s" in text  # 899 s long


def test_report_truncates_episode_rows(sample_result):
    text = render(sample_result, max_episode_rows=1)
    assert "+1" in text and "more" in text


def test_report_has_equity_sparkline(sample_result):
    text = render(sample_result)
    line = next(l for l in text.splitlines() if sum(ch in SPARK_BLOCKS for ch in l) > 50)
    assert "█" in line and "▁" in line
    assert len(line) <= 120
    assert "Equity" in text
    assert not any(ch in render(sample_result, sparkline=False) for ch in "▂▃▄▅▆▇")


def test_report_renders_extra_tables(sample_result):
    text = render(sample_result)
    assert "Prediction quality" in text
    assert "spread" in text and "0.4321" in text and "-0.03" in text


def test_sparkline_shape():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == SPARK_BLOCKS
    assert sparkline([0, 7, 3], 2) == "▁█"  # each bucket keeps its last value: 0, 3
    assert len(sparkline(range(1000), 20)) == 20
    assert sparkline([3, 3, 3], 10) == "▁▁▁"
    assert sparkline([], 10) == ""


def test_registration_hook_registers_the_reporters():
    import cmm_bt_plugins.report as plugin

    pm = pluggy.PluginManager("cmm_bt")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    got = []
    pm.hook.cmm_bt_register_reporters(register=lambda cls, aliases=(): got.append(cls))
    from cmm_bt_plugins.report.html import HtmlReport

    assert set(got) == {RichReport, PlotReport, HtmlReport}
    assert {c.name for c in got} == {"rich", "plots", "html"}


def test_registration_module_does_not_import_matplotlib():
    code = "import sys, cmm_bt_plugins.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_param_rejected():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RichReport.Config(bogus=1)
