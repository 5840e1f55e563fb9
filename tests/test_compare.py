"""Side-by-side comparison: one column per run, best value per row picked by direction."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console

from cmm_bt.compare import best_index, column_names, comparison_table, render_comparison
from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import BacktestOutput
from cmm_bt.formatting import KEY_METRICS
from cmm_bt.results import RunResult

ROW = {r.key: r for r in KEY_METRICS}


def result(strategy: str, run: str, **metrics) -> RunResult:
    out = BacktestOutput(Instrument("X", 0.5), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    return RunResult(run, strategy, "cme-gc", {}, metrics, out)


def test_best_index_by_direction():
    assert best_index([1.0, 3.0, 2.0], ROW["epnl"]) == {1}
    assert best_index([5.0, 3.0, 4.0], ROW["max_drawdown"]) == {1}
    assert best_index([5.0, math.nan, None], ROW["max_drawdown"]) == set()  # one finite value
    assert best_index([1.0, 1.0], ROW["sharpe"]) == {0, 1}
    assert best_index([1, 2], ROW["fills"]) == set()  # no direction


def test_render_comparison_has_one_column_per_strategy():
    runs = [result("fixed", "r1", epnl=10.0, max_drawdown=3.0, fills=4),
            result("cmm", "r2", epnl=-2.0, max_drawdown=1.0, fills=9)]
    console = Console(record=True, width=120)
    render_comparison(runs, console)
    text = console.export_text()
    assert "fixed" in text and "cmm" in text
    assert "10.00 USD" in text and "-2.00 USD" in text
    assert "Sharpe" not in text  # rows absent from every run are dropped
    table = comparison_table(runs)
    cells = [[c for c in col._cells] for col in table.columns[1:]]
    # rows present: epnl, max_drawdown, fills (in KEY_METRICS order)
    assert "bold" in str(cells[0][0].style) and "bold" not in str(cells[1][0].style)  # higher EPnL wins
    assert "bold" in str(cells[1][1].style) and "bold" not in str(cells[0][1].style)  # lower drawdown wins


def test_duplicate_strategy_names_get_run_names():
    assert column_names([result("a", "r1"), result("a", "r2"), result("b", "r3")]) == ["a (r1)", "a (r2)", "b"]


def test_empty_comparison():
    console = Console(record=True)
    render_comparison([], console)
    assert "nothing to compare" in console.export_text()


def test_study_table_marks_best_per_dataset_and_adds_prediction_errors():
    from cmm_bt.compare import study_columns, study_markdown
    from cmm_bt.formatting import MetricRow

    mae = [MetricRow("pred_mae_mid", "MAE mid", "float", "lower")]  # what a model plugin adds (cmm_bt_study_columns)
    runs = [result("fixed", "r1", epnl=1.0, map=2.0), result("cmm", "r2", epnl=3.0, map=1.0, pred_mae_mid=0.5)]
    other = result("fixed", "r3", epnl=-5.0, map=4.0)
    other.dataset_name = "cme-6b"
    runs.append(other)
    keys = [c.key for c in study_columns(mae)]
    assert keys == ["epnl", "map", "pnl_map", "sharpe", "fills", "pred_mae_mid", "decision_latency_us_p50"]
    md = study_markdown(runs, mae).splitlines()
    assert md[0].startswith("| Dataset | Strategy | EPnL | MAP | PnLMAP | Sharpe | Fills | MAE mid | Latency p50")
    assert md[2].startswith("| cme-gc | fixed | 1.00 USD | 2 |")  # not best: cmm wins both on cme-gc
    assert md[3].startswith("| cme-gc | cmm | **3.00 USD** | **1** |")
    assert md[4].startswith("| cme-6b | fixed | -5.00 USD | 4 |")  # alone in its dataset: nothing to beat
    assert "| 0.5 |" in md[3] and md[2].count("—") >= 4
