"""Run folders: contents, atomic writing, overwrite, reading back."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import cmm_bt.results as results
from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import FILL_COLUMNS, STEP_COLUMNS, BacktestOutput
from cmm_bt.errors import CmmBtError
from cmm_bt.results import RunResult, default_run_dir, load_run_folder, read_run_result, write_run_folder


def make_result(pnl: float = 7.5) -> RunResult:
    n = 5
    steps = pd.DataFrame({c: np.arange(n).astype(t) for c, t in STEP_COLUMNS.items()})
    fills = pd.DataFrame({c: np.ones(2).astype(t) for c, t in FILL_COLUMNS.items()})
    episodes = pd.DataFrame({"episode": [0], "start_ns": [0], "end_ns": [4], "pnl": [pnl], "fees": [0.1],
                             "fills": [2], "volume": [2.0], "mean_abs_position": [2.0], "max_abs_position": [4.0]})
    out = BacktestOutput(Instrument("GCM3", 0.1, 100.0), steps, fills, episodes,
                         counters={"events": 10, "orders_submitted": 3}, wall_s=0.5)
    return RunResult(
        run_name="fixed-spread",
        strategy_name="fixed-spread",
        dataset_name="cme-gc",
        config={"name": "fixed-spread", "execution": {"name": "fixed", "params": {"half_spread": 2}},
                "data_root": Path("/x"), "alpha": np.float64(0.5)},
        metrics={"epnl": pnl, "fills": np.int64(2), "sharpe": math.nan, "sortino": math.inf, "map": 0.25},
        output=out,
        extra={"prediction_quality": pd.DataFrame({"task": ["mid", "spread"], "mae": [0.5, 0.25]})},
        split="test",
    )


def test_writes_all_files_and_reads_back(tmp_path):
    res = make_result()
    target = write_run_folder(res, tmp_path / "runs" / "a")
    assert target == tmp_path / "runs" / "a" and res.run_dir == target
    names = {p.name for p in target.iterdir()}
    assert {"config.yaml", "metrics.json", "run.json", "steps.parquet", "fills.parquet", "episodes.parquet",
            "prediction_quality.parquet", "complete"} <= names
    text = (target / "metrics.json").read_text()
    raw = json.loads(text)
    assert list(raw) == sorted(raw)
    assert raw["sharpe"] is None and raw["sortino"] is None and raw["fills"] == 2 and raw["epnl"] == 7.5
    assert "NaN" not in text and "Infinity" not in text
    cfg = yaml.safe_load((target / "config.yaml").read_text())
    assert list(cfg) == ["name", "execution", "data_root", "alpha"]  # order kept
    assert cfg["data_root"] == "/x" and cfg["alpha"] == 0.5

    config, metrics, tables = load_run_folder(target)
    assert config["execution"]["params"]["half_spread"] == 2
    assert math.isnan(metrics["sharpe"]) and metrics["map"] == 0.25
    assert set(tables) == {"steps", "fills", "episodes", "prediction_quality"}
    pd.testing.assert_frame_equal(tables["steps"], res.output.steps)
    assert list(tables["prediction_quality"]["task"]) == ["mid", "spread"]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def test_read_run_result_rebuilds_the_result(tmp_path):
    target = write_run_folder(make_result(), tmp_path / "r")
    back = read_run_result(target)
    assert (back.run_name, back.strategy_name, back.dataset_name, back.split) == ("fixed-spread", "fixed-spread", "cme-gc", "test")
    assert back.output.instrument == Instrument("GCM3", 0.1, 100.0)
    assert back.output.counters == {"events": 10, "orders_submitted": 3}
    assert set(back.extra) == {"prediction_quality"} and back.run_dir == target


def test_existing_folder_is_an_error_without_overwrite(tmp_path):
    target = write_run_folder(make_result(1.0), tmp_path / "r")
    with pytest.raises(CmmBtError, match="already exists"):
        write_run_folder(make_result(2.0), target)
    assert load_run_folder(target)[1]["epnl"] == 1.0


def test_overwrite_replaces_and_leaves_nothing_behind(tmp_path):
    target = write_run_folder(make_result(1.0), tmp_path / "r")
    (target / "stale.txt").write_text("old")
    write_run_folder(make_result(2.0), target, overwrite=True)
    assert load_run_folder(target)[1]["epnl"] == 2.0
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def _fail_on_fills(monkeypatch):
    real = results.write_table

    def flaky(df, path: Path):
        if path.name == "fills.parquet":
            raise RuntimeError("disk full")
        real(df, path)

    monkeypatch.setattr(results, "write_table", flaky)


def test_failure_midway_leaves_no_folder_and_no_temp(tmp_path, monkeypatch):
    _fail_on_fills(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        write_run_folder(make_result(), tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_run(tmp_path, monkeypatch):
    target = write_run_folder(make_result(1.0), tmp_path / "r")
    _fail_on_fills(monkeypatch)
    with pytest.raises(RuntimeError):
        write_run_folder(make_result(2.0), target, overwrite=True)
    assert load_run_folder(target)[1]["epnl"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_incomplete_folder_is_refused(tmp_path):
    target = write_run_folder(make_result(), tmp_path / "r")
    (target / "complete").unlink()
    with pytest.raises(CmmBtError, match="incomplete"):
        load_run_folder(target)
    with pytest.raises(CmmBtError, match="not found"):
        load_run_folder(tmp_path / "nope")


def test_bad_extra_table_name(tmp_path):
    res = make_result()
    res.extra = {"steps": pd.DataFrame({"a": [1]})}
    with pytest.raises(CmmBtError, match="extra table"):
        write_run_folder(res, tmp_path / "r")
    res.extra = {"../evil": pd.DataFrame({"a": [1]})}
    with pytest.raises(CmmBtError, match="extra table"):
        write_run_folder(res, tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_default_run_dir():
    p = default_run_dir("as/glft", "cme-gc", now=datetime(2024, 1, 2, 3, 4, 5))
    assert p == Path("runs") / "as_glft-cme-gc-20240102-030405"
    assert default_run_dir("a", "b", Path("/tmp/x")).parent == Path("/tmp/x")


# ----------------------------------------------------------------- issue 13: faults while writing
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writers_put_their_files_in_before_the_folder_appears(tmp_path):
    seen = []

    def plots(folder):
        assert not (tmp_path / "r").exists() and not (folder / "complete").exists()  # still the temporary one
        (folder / "equity.png").write_bytes(b"png")
        seen.append(folder.name)

    target = write_run_folder(make_result(), tmp_path / "r", writers=[plots])
    assert seen == [f".r.tmp-{os.getpid()}"]
    assert (target / "equity.png").read_bytes() == b"png" and (target / "complete").exists()


def test_a_writer_interrupted_leaves_nothing(tmp_path):
    def interrupted(folder):
        (folder / "equity.png").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run_folder(make_result(), tmp_path / "r", writers=[interrupted])
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_killed_writers_are_removed_and_a_lost_run_restored(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".killed.tmp-{dead}").mkdir()  # a run killed while writing
    (tmp_path / f".killed.tmp-{dead}" / "steps.parquet").write_bytes(b"x")
    live = tmp_path / f".other.tmp-{os.getppid()}"  # a run being written by a live process
    live.mkdir()
    old = write_run_folder(make_result(1.0), tmp_path / "prev")  # killed between moving aside and moving in:
    os.rename(old, tmp_path / f".prev.old-{dead}")
    write_run_folder(make_result(), tmp_path / "new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["new", "prev", live.name])
    assert load_run_folder(tmp_path / "prev")[1]["epnl"] == 1.0  # nothing lost


@pytest.mark.parametrize("case", ["exists", "file", "below-a-file", "dangling-link", "unwritable"])
def test_check_out_dir_fails_before_any_work(tmp_path, case):
    (tmp_path / "plain").write_text("x")
    (tmp_path / "run").mkdir()
    target = {
        "exists": tmp_path / "run",
        "file": tmp_path / "plain",
        "below-a-file": tmp_path / "plain" / "sub" / "r",
        "dangling-link": tmp_path / "link",
        "unwritable": tmp_path / "ro" / "r",
    }[case]
    if case == "dangling-link":
        os.symlink(tmp_path / "nowhere", target)
    if case == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere (the CLI test uses /proc)")
        (tmp_path / "ro").mkdir(mode=0o555)
    message = {"exists": "already exists (pass --overwrite", "file": "not a folder", "below-a-file": "is not a folder",
               "dangling-link": "dangling symbolic link", "unwritable": "cannot write into"}[case]
    with pytest.raises(CmmBtError, match=re.escape(message)):
        results.check_out_dir(target)
    with pytest.raises(CmmBtError):
        write_run_folder(make_result(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["plain", "run"] + (["link"] if case == "dangling-link" else [])
                                                                + (["ro"] if case == "unwritable" else []))
    results.check_out_dir(tmp_path / "new" / "deeper")  # creates nothing
    assert not (tmp_path / "new").exists()


def test_run_json_names_the_host(tmp_path):
    """Latency and energy metrics depend on the machine: the run folder says which it was."""
    from cmm_bt.hostinfo import describe_host

    info = json.loads((write_run_folder(make_result(), tmp_path / "r") / "run.json").read_text())
    assert info["host"] == describe_host()


def test_fee_model_in_config_yaml_and_run_json(tmp_path):
    res = make_result()
    res.fee_model = "proportional: maker 2 bp, taker 5 bp of notional (engine defaults: the strategy sets no fees)"
    target = write_run_folder(res, tmp_path / "r")
    text = (target / "config.yaml").read_text()
    assert text.splitlines()[1] == f"# Fees: {res.fee_model}"
    assert yaml.safe_load(text)["name"] == "fixed-spread"  # still the plain config
    assert read_run_result(target).fee_model == res.fee_model
