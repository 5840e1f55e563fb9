"""Products contribute metrics, tables and files to the run folder (cmm_bt.pipeline.RunOutputs)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from cmm_bt.api import add_run_outputs
from cmm_bt.errors import CmmBtError
from cmm_bt.pipeline import Products
from cmm_bt.results import write_run_folder



def make_result():
    """The run of tests/test_results.py (loaded by path: tests/ is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_results_tests", Path(__file__).with_name("test_results.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_result()


@dataclass
class Curve:
    def run_metrics(self):
        return {"curve_points": 3.0, "decision_latency_us_p50": 12.0}

    def run_tables(self):
        return {"curve": pd.DataFrame({"x": [1, 2, 3]})}

    def run_files(self):
        return {"curve.png": b"\x89PNG fake"}


class Plain:
    """A product that contributes nothing."""


def test_products_add_metrics_tables_and_files_to_the_run_folder(tmp_path):
    result = make_result()
    result.metrics["decision_latency_us_p50"] = 5.0
    products = Products({Plain: Plain(), Curve: Curve()})
    assert [type(p) for p in products.values()] == [Plain, Curve]
    for p in products.values():
        add_run_outputs(result, p)
    assert result.metrics["curve_points"] == 3.0
    assert result.metrics["decision_latency_us_p50"] == 12.0 and result.metrics["policy_latency_us_p50"] == 5.0
    folder = write_run_folder(result, tmp_path / "run")
    assert (folder / "curve.png").read_bytes() == b"\x89PNG fake"
    assert pd.read_parquet(folder / "curve.parquet")["x"].tolist() == [1, 2, 3]
    class SameTable:
        def run_tables(self):
            return {"curve": pd.DataFrame()}

    with pytest.raises(RuntimeError, match="two products write the table 'curve'"):
        add_run_outputs(result, SameTable())


def test_engine_metrics_and_reserved_file_names_are_protected(tmp_path):
    class Clash:
        def run_metrics(self):
            return {"epnl": 1.0}

    result = make_result()
    with pytest.raises(RuntimeError, match="epnl"):
        add_run_outputs(result, Clash())
    result = make_result()
    result.files["metrics.json"] = b"{}"
    with pytest.raises(CmmBtError, match="bad extra file name"):
        write_run_folder(result, tmp_path / "run")
    assert not (tmp_path / "run").exists()
