"""Bad input and faults, tried as a hostile user would (issue 13, section 3), through ``cmm-bt``: one
line on stderr naming the file and the key or row, exit code 2, nothing half-written left behind,
nothing lost, no cache poisoned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

T0 = pd.Timestamp("2024-01-02T09:00:00Z").value
PROJECT = Path(__file__).resolve().parents[2]


def assert_one_line_error(result, *fragments: str, code: int = 2) -> str:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def book_df(n: int = 600, dt_ms: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    mid = 100 + 0.5 * np.cumsum(rng.integers(-1, 2, n))
    return pd.DataFrame({
        "ts": T0 + np.arange(n) * dt_ms * 1_000_000,
        "bid_price_1": mid - 0.5, "bid_qty_1": rng.integers(1, 6, n).astype(float),
        "bid_price_2": mid - 1.0, "bid_qty_2": 5.0,
        "ask_price_1": mid + 0.5, "ask_qty_1": rng.integers(1, 6, n).astype(float),
        "ask_price_2": mid + 1.0, "ask_qty_2": 5.0,
    })


def trades_df(book: pd.DataFrame, every: int = 5) -> pd.DataFrame:
    rows = book.iloc[1::every]
    side = np.where(np.arange(len(rows)) % 2 == 0, "B", "S")
    price = np.where(side == "B", rows["ask_price_1"], rows["bid_price_1"])
    return pd.DataFrame({"ts": rows["ts"].to_numpy() + 50_000_000, "price": price, "qty": 2.0, "side": side})


def dataset(tmp_path: Path, book: pd.DataFrame | None = None, trades: pd.DataFrame | None = None, *,
            split: dict | None = None, name: str = "mine", files: list[str] | None = None) -> Path:
    """A generic dataset under ``tmp_path/root`` and its manifest ``tmp_path/NAME.yaml``."""
    root = tmp_path / "root" / "mine"
    root.mkdir(parents=True, exist_ok=True)
    book = book_df() if book is None else book
    book.to_csv(root / "book.csv", index=False)
    names = ["mine/book.csv"]
    if trades is not None:
        trades.to_csv(root / "trades.csv", index=False)
        names.append("mine/trades.csv")
    manifest = {"name": name, "source": "generic", "files": files or names,
                "instrument": {"symbol": "X", "tick_size": 0.5, "multiplier": 10.0}}
    if split:
        manifest["split"] = split
    path = tmp_path / f"{name.replace('/', '_').replace('.', '_') or 'x'}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def strategy(tmp_path: Path, manifest: Path, *, split: str = "all", engine: dict | None = None,
             name: str = "s.yaml", reporters: list | None = None) -> Path:
    eng = {"decision_interval_ms": 100, "queue_model": "power-prob", "maker_fee": 0.0, "taker_fee": 0.0}
    if engine is not None:
        eng = engine
    data = {"dataset": str(manifest), "split": split, "execution": {"name": "fixed-spread"}, "engine": eng}
    if reporters is not None:
        data["reporters"] = reporters
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("CMM_BT_CACHE_DIR", str(path))
    monkeypatch.delenv("CMM_BT_ALLOW_EXTERNAL_FILES", raising=False)
    return path


def cached_entries(cache: Path) -> list[str]:
    data = cache / "data"
    return sorted(p.name for p in data.iterdir() if not p.name.endswith(".lock")) if data.is_dir() else []


def run(cli, tmp_path, s: Path, *extra):
    return cli("run", s, "--data-root", tmp_path / "root", *extra)


# ------------------------------------------------------------------------------ prices and rows
@pytest.mark.parametrize("bad", ["1e300", "inf"])
@pytest.mark.parametrize("where", ["book", "trades"])
def test_prices_beyond_int64_ticks_exit_2_and_nothing_cached(cli, tmp_path, cache, bad, where):
    book = book_df()
    trades = trades_df(book)
    if where == "book":
        book["ask_price_2"] = book["ask_price_2"].astype(object)
        book.loc[17, "ask_price_2"] = bad
    else:
        trades["price"] = trades["price"].astype(object)
        trades.loc[3, "price"] = bad
    s = strategy(tmp_path, dataset(tmp_path, book, trades))
    result = run(cli, tmp_path, s, "--out", tmp_path / "r")
    f, row = ("book.csv", "row 17 (ask_price_2)") if where == "book" else ("trades.csv", "row 3")
    assert_one_line_error(result, f, "price out of range at " + row)
    assert cached_entries(cache) == [] and not (tmp_path / "r").exists()


def test_header_only_book_plus_trades_is_exit_2_not_zero_decisions(cli, tmp_path, cache):
    book = book_df()
    s = strategy(tmp_path, dataset(tmp_path, book.iloc[:0], trades_df(book)))
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "book.csv", "no data rows")
    assert not (tmp_path / "r").exists()


def test_split_with_no_decision_step_is_exit_2(cli, tmp_path, cache):
    book = book_df(3, dt_ms=40)  # 0.08 s of data: the first decision would come after its end
    s = strategy(tmp_path, dataset(tmp_path, book), split="test")
    line = assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "mine.yaml", "split",
                                 "'test' split has no decision step")
    assert "0.08 s of data (" in line
    assert not (tmp_path / "r").exists()
    book = book_df(600)  # 60 s of data whose test split starts after the book went one-sided for good
    book.loc[300:, ["ask_price_1", "ask_price_2"]] = np.nan
    end = pd.Timestamp(int(book["ts"].iloc[-1]), tz="UTC")
    split = {"validation_start": (end - pd.Timedelta("20s")).isoformat(),
             "test_start": (end - pd.Timedelta("10s")).isoformat()}
    s = strategy(tmp_path, dataset(tmp_path, book, split=split), split="test")
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "'test' split has no decision step")


def test_negative_or_nan_book_quantities_are_errors(cli, tmp_path, cache):
    book = book_df()
    book.loc[40, "bid_qty_1"] = np.nan
    s = strategy(tmp_path, dataset(tmp_path, book))
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "book.csv", "bid_qty", "at row 40 (bid_qty_1)")


def test_tick_size_that_does_not_match_the_prices_fails(cli, tmp_path, cache):
    manifest = dataset(tmp_path)
    data = yaml.safe_load(manifest.read_text())
    data["instrument"]["tick_size"] = 0.3  # prices are in 0.5 steps
    manifest.write_text(yaml.safe_dump(data))
    s = strategy(tmp_path, manifest)
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "book.csv", "bid_price",
                          "are not multiples of the tick size 0.3", "does not match")


def test_binance_line_whose_json_is_a_list_is_exit_2(cli, tmp_path, cache, data_root):
    import gzip

    lines = []
    with gzip.open(data_root / "binance/usdm/btcusdt_20240808.gz", "rb") as fh:
        for i, line in zip(range(200), fh):
            lines.append(line)
    lines[59] = lines[59].split(b" ", 1)[0] + b' ["not", "an", "object"]\n'
    (tmp_path / "root" / "bn").mkdir(parents=True)
    (tmp_path / "root" / "bn" / "cap.gz").write_bytes(gzip.compress(b"".join(lines)))
    manifest = tmp_path / "bn.yaml"
    manifest.write_text(yaml.safe_dump({"name": "bn", "source": "binance", "files": ["bn/cap.gz"]}))
    result = run(cli, tmp_path, strategy(tmp_path, manifest), "--out", tmp_path / "r")
    assert_one_line_error(result, "cap.gz", "unexpected message at line 60", "not an object")


# ------------------------------------------------------------------------------ the data cache
def test_damaged_data_cache_is_rebuilt_with_one_warning_line(cli, tmp_path, cache):
    s = strategy(tmp_path, dataset(tmp_path, trades=trades_df(book_df())), reporters=[{"name": "rich"}])
    first = run(cli, tmp_path, s, "--out", tmp_path / "a")
    assert first.code == 0, first.err
    parquet = next((cache / "data").glob("*.parquet"))
    parquet.write_bytes(parquet.read_bytes()[:100])  # truncated: the ArrowInvalid of every later run
    second = run(cli, tmp_path, s, "--out", tmp_path / "b")
    assert second.code == 0, second.err
    lines = second.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "rebuilding it" in lines[0], second.err
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert a["epnl"] == b["epnl"] and a["fills"] == b["fills"] and a["events"] == b["events"]
    third = run(cli, tmp_path, s, "--out", tmp_path / "c")
    assert third.code == 0 and third.err.strip() == ""


# ------------------------------------------------------------------------------ manifests and paths
def test_manifest_name_with_a_path_is_exit_2(cli, tmp_path, cache):
    manifest = dataset(tmp_path, name="../../x")
    result = run(cli, tmp_path, strategy(tmp_path, manifest), "--out", tmp_path / "r")
    assert_one_line_error(result, "name", "plain name")
    assert not cache.exists() or cached_entries(cache) == []
    assert not (tmp_path.parent / "x-").exists()


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd"])
def test_files_outside_the_data_root_are_refused_and_never_echoed(cli, tmp_path, cache, target):
    manifest = dataset(tmp_path, files=["mine/book.csv", target])
    result = run(cli, tmp_path, strategy(tmp_path, manifest), "--out", tmp_path / "r")
    line = assert_one_line_error(result, "files.1", "outside the data root", "--allow-external-files")
    assert "root:" not in line and "/bin/" not in line


def test_external_files_with_the_option(cli, tmp_path, cache):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    book_df().to_csv(elsewhere / "book.csv", index=False)
    manifest = dataset(tmp_path, files=[str(elsewhere / "book.csv")])
    s = strategy(tmp_path, manifest, reporters=[])
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "outside the data root")
    result = run(cli, tmp_path, s, "--out", tmp_path / "r", "--allow-external-files")
    assert result.code == 0, result.err


# ------------------------------------------------------------------------------ engine values
@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("entry_latency_us", ".inf", "finite"),
        ("response_latency_us", "1e30", "less than or equal"),
        ("feed_latency_us", ".nan", "finite"),
        ("decision_interval_ms", "1e30", "less than or equal"),
        ("decision_interval_ms", "1e-7", "greater than or equal"),
        ("episode_length_s", ".inf", "finite"),
        ("maker_fee", ".nan", "finite"),
        ("taker_fee", ".inf", "finite"),
        ("position_limit", ".nan", "finite"),
        ("maker_fee_per_contract", "1.5", "does not apply with fee_model 'proportional'"),
    ],
)
def test_engine_values_run_cannot_honour_are_exit_2(cli, tmp_path, cache, key, value, fragment):
    s = strategy(tmp_path, dataset(tmp_path))
    result = run(cli, tmp_path, s, "-o", f"engine.{key}={value}", "--out", tmp_path / "r")
    assert_one_line_error(result, "s.yaml", "engine", key, fragment)
    assert not (tmp_path / "r").exists()
    data = yaml.safe_load(s.read_text())
    data["engine"][key] = yaml.safe_load(value)  # the same value written in the file
    s.write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("validate", s), "s.yaml", key, fragment)


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["engine.decision_interval_ms=0.000001"], "engine.decision_interval_ms", "decision steps over this data"),
        (["engine.episode_mode=fixed", "engine.decision_interval_ms=0.001", "engine.episode_length_s=0.000001"],
         "engine.episode_length_s", "episodes: use longer episodes"),
        (["engine.episode_mode=fixed", "engine.episode_length_s=0.01"], "episode_length_s", "shorter than one decision"),
    ],
)
def test_grids_the_data_cannot_hold_are_exit_2_not_memory_errors(cli, tmp_path, cache, overrides, key, fragment):
    s = strategy(tmp_path, dataset(tmp_path))
    result = run(cli, tmp_path, s, *[a for o in overrides for a in ("-o", o)], "--out", tmp_path / "r")
    assert_one_line_error(result, "s.yaml", key, fragment)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ the --out folder
@pytest.mark.parametrize("case", ["below-a-file", "dangling-link", "unwritable"])
def test_bad_out_is_exit_2_before_the_backtest(cli, tmp_path, cache, case):
    s = strategy(tmp_path, dataset(tmp_path))
    (tmp_path / "plain").write_text("x")
    if case == "below-a-file":
        out, fragment = tmp_path / "plain" / "run", "is not a folder"
    elif case == "dangling-link":
        out, fragment = tmp_path / "link", "dangling symbolic link"
        os.symlink(tmp_path / "nowhere", out)
    else:
        if os.geteuid() == 0:
            if not Path("/proc/self").is_dir():
                pytest.skip("needs /proc (root writes anywhere else)")
            out = Path("/proc/cmm-bt-run")
        else:
            (tmp_path / "ro").mkdir(mode=0o555)
            out = tmp_path / "ro" / "run"
        fragment = "cannot write into"
    assert_one_line_error(run(cli, tmp_path, s, "--out", out), str(out), fragment)
    assert not cache.exists()  # found before the data was even loaded


def test_overwrite_flag(cli, tmp_path, cache):
    s = strategy(tmp_path, dataset(tmp_path), reporters=[{"name": "plots"}])
    assert run(cli, tmp_path, s, "--out", tmp_path / "r").code == 0
    assert_one_line_error(run(cli, tmp_path, s, "--out", tmp_path / "r"), "already exists", "pass --overwrite")
    again = run(cli, tmp_path, s, "--out", tmp_path / "r", "--overwrite")
    assert again.code == 0, again.err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert (tmp_path / "r" / "equity.png").is_file() and (tmp_path / "r" / "complete").is_file()


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run(cli, tmp_path, cache):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs = tmp_path / "runs"
    (runs / f".old-run.tmp-{proc.pid}").mkdir(parents=True)
    (runs / f".old-run.tmp-{proc.pid}" / "steps.parquet").write_bytes(b"half")
    (runs / f".old-run.steps.tmp-{proc.pid}").write_bytes(b"steps written during a replay that was killed")
    s = strategy(tmp_path, dataset(tmp_path), reporters=[])
    assert run(cli, tmp_path, s, "--out", runs / "new").code == 0
    assert sorted(p.name for p in runs.iterdir()) == ["new"]


# ------------------------------------------------------------------------------ messages
def test_extends_chain_of_1000_files_is_exit_2(cli, tmp_path):
    (tmp_path / "f0.yaml").write_text("dataset: synthetic\nexecution: {name: fixed-spread}\n")
    for i in range(1, 1000):
        (tmp_path / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
    assert_one_line_error(cli("validate", tmp_path / "f999.yaml"), "extends", "extends chain longer than 64 files")
    (tmp_path / "ok.yaml").write_text("extends: f40.yaml\n")  # 41 levels: fine
    assert cli("validate", tmp_path / "ok.yaml").code == 0


def test_interrupt_while_writing_the_run_folder(cli, tmp_path, cache, monkeypatch):
    import cmm_bt.results as results

    def ctrl_c(df, path):  # SIGINT arrives while the tables are written
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

    s = strategy(tmp_path, dataset(tmp_path), reporters=[])
    monkeypatch.setattr(results, "write_table", ctrl_c)
    result = run(cli, tmp_path, s, "--out", tmp_path / "runs" / "r")
    assert result.code == 130 and result.err.strip() == "interrupted", result
    assert list((tmp_path / "runs").iterdir()) == []


SLOW_PLUGIN = '''
import sys, time
from cmm_bt import hookimpl
from cmm_bt.components import ExecutionPolicy, Quotes


class Slow(ExecutionPolicy):
    name = "slow"

    def quote(self, state):
        if state.step == 0:
            sys.stderr.write("quoting\\n")
            sys.stderr.flush()
        time.sleep(0.002)
        return Quotes(state.best_bid, 1.0, state.best_ask, 1.0)


@hookimpl
def cmm_bt_register_execution(register):
    register(Slow)
'''


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_the_backtest_says_so_and_leaves_nothing(tmp_path, cache, sig, code, word):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "slow.py").write_text(SLOW_PLUGIN)
    s = tmp_path / "s.yaml"
    s.write_text("dataset: synthetic\nsplit: all\nexecution: {name: slow}\n")
    out = tmp_path / "runs" / "r"
    env = {**os.environ, "CMM_BT_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "cmm_bt", "run", str(s), "--out", str(out), "--plugins-dir",
                             str(plugins)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=PROJECT)
    try:
        first = proc.stderr.readline()  # the policy's first step: the replay is running
        assert first.strip() == b"quoting", first + proc.stderr.read()
        proc.send_signal(sig)
        rest = proc.stderr.read().decode()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, rest
    assert rest.strip() == word
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


# ------------------------------------------------------------------------------ fees
def test_fee_defaults_are_shown_in_the_header_and_config(cli, tmp_path, cache):
    s = strategy(tmp_path, dataset(tmp_path, trades=trades_df(book_df())), engine={"decision_interval_ms": 100},
                 reporters=[{"name": "rich"}])
    result = run(cli, tmp_path, s, "--out", tmp_path / "r")
    assert result.code == 0, result.err
    flat = " ".join(result.out.replace("│", " ").split())  # the header cell may wrap
    assert "Fees proportional: maker 2 bp, taker 5 bp of notional (engine defaults: the strategy sets no fees)" in flat
    head = (tmp_path / "r" / "config.yaml").read_text().splitlines()[1]
    assert head == "# Fees: proportional: maker 2 bp, taker 5 bp of notional (engine defaults: the strategy sets no fees)"
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["engine"]["fee_model"] == "proportional" and cfg["engine"]["maker_fee"] == 0.0002


def test_per_contract_fee_model_end_to_end(cli, tmp_path, cache):
    engine = {"decision_interval_ms": 100, "queue_model": "power-prob", "fee_model": "per-contract",
              "maker_fee_per_contract": 0.25, "taker_fee_per_contract": 1.5}
    s = strategy(tmp_path, dataset(tmp_path, trades=trades_df(book_df(), every=2)), engine=engine,
                 reporters=[{"name": "rich"}])
    result = run(cli, tmp_path, s, "--out", tmp_path / "r")
    assert result.code == 0, result.err
    assert "per-contract: maker 0.25 USD, taker 1.5 USD per contract" in " ".join(result.out.replace("│", " ").split())
    fills = pd.read_parquet(tmp_path / "r" / "fills.parquet")
    assert len(fills) > 0
    expected = np.where(fills["maker"], 0.25, 1.5) * fills["qty"]
    np.testing.assert_allclose(fills["fee"], expected)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["fees"] == pytest.approx(float(expected.sum()))
