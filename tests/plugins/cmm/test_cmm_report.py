"""The CMM report section: latency ratio, prediction quality, weights by family, students, probe bands."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import BacktestOutput
from cmm_bt.results import RunResult

from cmm_bt_plugins.cmm.report import QUIET_TABLES, cmm_bt_report_sections


def _quality() -> pd.DataFrame:
    rows = []
    for rows_, model, mae in (("teacher", "teacher", 2.0), ("teacher", "cmm", 1.5), ("teacher", "naive", 2.5),
                              ("all", "cmm", 1.4), ("all", "student:task:mid", 1.3), ("all", "student:layer:0-10", 1.6)):
        rows.append({"split": "test", "rows": rows_, "model": model, "task": "mid", "n": 10, "mae": mae, "rmse": mae, "r2": 0.1, "diracc": 0.5})
    return pd.DataFrame(rows)


def _result() -> RunResult:
    extra = {
        "prediction_quality": _quality(),
        "cmm_weights_by_family": pd.DataFrame({"task": ["mid", "mid"], "regime": ["low-vol", "low-vol"],
                                               "family": ["layer", "task"], "mean_weight": [0.75, 0.25]}),
        "cmm_students": pd.DataFrame({"student": ["layer:0-10", "task:mid"], "family": ["layer", "task"], "tasks": ["mid", "mid"],
                                      "band": ["0,1,2,3,4,5,6,7,8,9,10", "3,7"], "regime": [-1, -1], "params": [1000, 500],
                                      "cached": [False, True], "val_loss": [1.5, 1.2], "best_epoch": [3, 4], "epochs": [8, 9]}),
        "probe": pd.DataFrame({"layer": [0, 1, 2], "task": ["mid"] * 3, "regime": ["low-vol"] * 3,
                               "phi": [0.0, 0.2, 0.1], "Phi": [0.0, 0.67, 0.33], "peak": [False, True, True]}),
    }
    metrics = {"cmm_decision_latency_us_p50": 100.0, "cmm_decision_latency_us_p99": 200.0, "model_params": 1500.0,
               "teacher_decision_latency_us_p50": 200_000.0, "teacher_decision_latency_us_p99": 300_000.0,
               "teacher_params": 1.5e8, "probe_specialisation_index": 0.25}
    out = BacktestOutput(Instrument("X", 0.5), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    return RunResult("cmm", "cmm", "synthetic", {}, metrics, out, extra=extra, split="test", quiet_tables=set(QUIET_TABLES))


def test_section_shows_ratio_quality_weights_students_and_probe():
    console = Console(record=True, width=160)
    cmm_bt_report_sections(_result(), console)
    text = console.export_text()
    assert "2,000×" in text and "1,500×" in text and "100,000×" in text  # p50, p99, parameters
    assert "2 (+0.10)" in text and "1.5 (+0.10)" in text and "2.5 (+0.10)" in text  # teacher, CMM, naive on teacher rows
    assert "1.3 task:mid" in text  # best student over every step
    assert "0.75" in text and "0.25" in text
    assert "0–10" in text and "3,7" in text and "8 (3)" in text  # contiguous band as a range, gaps listed
    assert "MAE mid" in text and " 1.6 │" in text  # each student's own error
    assert "1–2  Φ 0.50" in text and "task profiles): 0.250" in text


def test_section_is_silent_for_other_runs():
    console = Console(record=True)
    result = _result()
    result.extra = {}
    cmm_bt_report_sections(result, console)
    assert console.export_text() == ""


def test_rich_report_skips_quiet_tables():
    from cmm_bt_plugins.report.rich_report import RichReport

    console = Console(record=True, width=160)
    result = _result()
    result.extra["other_table"] = pd.DataFrame({"x": [1]})
    RichReport(RichReport.Config()).report(result, console)
    text = console.export_text()
    assert "Other" in text and "Cmm students" not in text and "Probe" not in text


def test_study_notes_say_what_the_probe_found():
    from cmm_bt_plugins.cmm.report import cmm_bt_study_notes

    result = _result()
    result.metrics.update(probe_samples_fit=1200.0, probe_samples_held_out=800.0)
    notes = cmm_bt_study_notes(result)
    assert notes == {"probe peak bands": {"mid": {"low-vol": "layers 1–2, Φ 0.50"}}, "probe specialisation index": 0.25,
                     "probe samples (fit / held out)": "1200 / 800"}
    result.extra["probe"] = result.extra["probe"].assign(informative=False)
    assert cmm_bt_study_notes(result)["probe peak bands"] == {"mid": {"low-vol": "no layer informative"}}
    result.extra = {}
    assert cmm_bt_study_notes(result) is None
