"""The self-contained HTML report of a run."""

from __future__ import annotations

import re

from cmm_bt_plugins.report.html import HtmlReport, render_run


def test_report_is_self_contained_with_tables_and_charts(sample_result, tmp_path):
    rep = HtmlReport(HtmlReport.Config(dpi=40))
    rep.write_files(sample_result, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "cmm-bt run: fixed-cme-gc" in html
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [a for a, _ in imgs] == ["Equity and drawdown", "Inventory", "Quotes", "Markouts"]
    assert all(len(b) > 1000 for _, b in imgs)
    assert not re.search(r'(src|href)="https?:', html)  # opens offline
    for text in ("EPnL (per episode)", "1,000.00 USD", "PnL: spread capture", "Episodes", "prediction_quality", "0.4321"):
        assert text in html, text
    assert not list(tmp_path.glob(".*tmp*"))


def test_names_are_escaped(sample_result):
    sample_result.strategy_name = "<script>x</script>"
    html = render_run(sample_result, HtmlReport.Config(dpi=30))
    assert "<script>x" not in html and "&lt;script&gt;x" in html
