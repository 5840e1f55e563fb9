"""The plots reporter writes PNG files atomically into the run folder."""

from __future__ import annotations

from rich.console import Console

from cmm_bt_plugins.report.plots import PLOT_FILES, PlotReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_written_as_png(sample_result, tmp_path):
    sample_result.run_dir = tmp_path
    console = Console(record=True, width=120)
    PlotReport(PlotReport.Config(window_s=120, dpi=40)).report(sample_result, console)
    for name in PLOT_FILES:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PLOT_FILES)  # no temp files left
    assert "equity.png" in console.export_text()


def test_plots_for_a_chosen_episode(sample_result, tmp_path):
    sample_result.run_dir = tmp_path
    PlotReport(PlotReport.Config(episode=1, dpi=40)).report(sample_result, Console(record=True))
    assert (tmp_path / "quotes.png").read_bytes().startswith(PNG_MAGIC)


def test_plots_skip_without_run_dir(sample_result):
    console = Console(record=True, width=120)
    PlotReport(PlotReport.Config()).report(sample_result, console)
    assert "skipped" in console.export_text()


def test_write_files_puts_the_pngs_in_the_given_folder_and_report_only_prints(sample_result, tmp_path):
    folder = tmp_path / ".run.tmp-1"  # the run folder before its atomic rename
    folder.mkdir()
    reporter = PlotReport(PlotReport.Config(window_s=60, dpi=30))
    reporter.write_files(sample_result, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(PLOT_FILES)
    folder.rename(tmp_path / "run")
    sample_result.run_dir = tmp_path / "run"
    before = {n: (tmp_path / "run" / n).stat().st_mtime_ns for n in PLOT_FILES}
    console = Console(record=True, width=120)
    reporter.report(sample_result, console)  # already there: nothing is rewritten after the rename
    assert {n: (tmp_path / "run" / n).stat().st_mtime_ns for n in PLOT_FILES} == before
    assert "equity.png" in console.export_text()
