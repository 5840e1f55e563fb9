"""The normalised-events cache and the data root (issue 13): damaged entries are detected and rebuilt,
failed loads cache nothing, killed writers' leftovers go, manifests stay inside the data root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.loading import CACHE_FORMAT, check_market, load_market, resolve_files
from cmm_bt.data.manifest import DatasetManifest
from cmm_bt.data.schema import Instrument, MarketData, make_events
from cmm_bt.errors import CmmBtError, ConfigError, DataError
from cmm_bt.plugins import Hooks, build_plugin_manager


@pytest.fixture(scope="module")
def registry():
    return Hooks(build_plugin_manager()).build_registry()


def _book(n: int = 50, price: float = 100.0) -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-02T09:00:00Z").value + np.arange(n) * 100_000_000
    return pd.DataFrame({"ts": ts, "bid_price_1": price, "bid_qty_1": 2.0, "ask_price_1": price + 0.5,
                         "ask_qty_1": 3.0})


def _manifest(root: Path, df: pd.DataFrame, name: str = "mine", files: list[str] | None = None) -> DatasetManifest:
    (root / "mine").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "mine" / "book.csv", index=False)
    return DatasetManifest(name=name, source="generic", files=files or ["mine/book.csv"],
                           instrument={"symbol": "X", "tick_size": 0.5}, path=root / f"{name}.yaml")


def _entry(cache: Path) -> tuple[Path, Path]:
    parquet = sorted((cache / "data").glob("*.parquet"))
    assert len(parquet) == 1, list((cache / "data").iterdir())
    return parquet[0], parquet[0].with_suffix(".json")


def _quiet_load(manifest, root, registry, cache):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        market = load_market(manifest, root, registry, cache)
    return market, [str(w.message) for w in said]


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _alter_parquet(p: Path) -> None:
    """A valid parquet file with other prices: only the checksum can tell."""
    df = pd.read_parquet(p)
    df["price"] = df["price"] + 1
    df.to_parquet(p, index=False)


def _alter_rows(p: Path) -> None:
    """The index says fewer rows than the (intact) parquet file holds."""
    meta = json.loads(p.read_text())
    meta["events"]["rows"] -= 1
    p.write_text(json.dumps(meta))


def _old_format(p: Path) -> None:
    meta = json.loads(p.read_text())
    del meta["format"]
    p.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("which", "damage", "reason"),
    [
        ("parquet", _truncate, "bytes"),
        ("parquet", _empty, "bytes"),
        ("parquet", _alter_parquet, ""),
        ("parquet", Path.unlink, "missing"),
        ("json", _truncate, "unreadable"),
        ("json", _empty, "unreadable"),
        ("json", _alter_rows, "rows"),
        ("json", _old_format, "another version"),
    ],
    ids=["parquet-truncated", "parquet-empty", "parquet-altered", "parquet-gone", "json-truncated", "json-empty",
         "json-row-count", "json-old-format"],
)
def test_damaged_cache_entry_is_rebuilt_with_one_warning(tmp_path, registry, which, damage, reason):
    root, cache = tmp_path / "root", tmp_path / "cache"
    manifest = _manifest(root, _book())
    first, said = _quiet_load(manifest, root, registry, cache)
    assert said == []
    parquet, index = _entry(cache)
    damage(parquet if which == "parquet" else index)
    again, said = _quiet_load(manifest, root, registry, cache)
    assert len(said) == 1 and "data cache entry unusable" in said[0] and "rebuilding it" in said[0], said
    assert reason in said[0] and "\n" not in said[0]
    pd.testing.assert_frame_equal(again.events, first.events)  # the same data, never the damaged one
    third, said = _quiet_load(manifest, root, registry, cache)  # and the rebuilt entry is sound
    assert said == []
    pd.testing.assert_frame_equal(third.events, first.events)
    meta = json.loads(_entry(cache)[1].read_text())
    assert meta["format"] == CACHE_FORMAT and meta["events"]["rows"] == len(first.events)


def test_a_failed_load_caches_nothing(tmp_path, registry):
    root, cache = tmp_path / "root", tmp_path / "cache"
    df = _book()
    df.loc[7, "bid_price_1"] = 1e300
    manifest = _manifest(root, df)
    with pytest.raises(DataError, match=r"book\.csv: bid_price: price out of range at row 7"):
        load_market(manifest, root, registry, cache)
    assert not list((cache / "data").glob("*.parquet")) and not list((cache / "data").glob("*.json"))
    assert not [p for p in (cache / "data").iterdir() if ".tmp-" in p.name]


def test_warnings_of_the_first_load_are_repeated_from_the_cache(tmp_path, registry):
    root, cache = tmp_path / "root", tmp_path / "cache"
    df = _book(200)
    df.loc[3, "bid_price_1"] = 100.25  # 1 of 400 prices off the 0.5 grid: warned, kept
    manifest = _manifest(root, df)
    _, said = _quiet_load(manifest, root, registry, cache)
    assert len(said) == 1 and "not multiples of the tick size" in said[0]
    _, again = _quiet_load(manifest, root, registry, cache)
    assert again == said


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path, registry):
    root, cache = tmp_path / "root", tmp_path / "cache"
    folder = cache / "data"
    folder.mkdir(parents=True)
    dead = folder / f".mine-0123.parquet.tmp-{_dead_pid()}"
    dead.write_bytes(b"half a parquet file")
    live = folder / f".mine-0123.parquet.tmp-{os.getppid()}"  # the parent of this process runs
    live.write_bytes(b"being written")
    load_market(_manifest(root, _book()), root, registry, cache)
    assert not dead.exists() and live.exists()


# ----------------------------------------------------------------------------- the data root
@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "", "x" * 101])
def test_manifest_names_must_be_plain(name):
    with pytest.raises(Exception, match="plain name"):
        DatasetManifest(name=name, source="generic")


@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd", "mine/../../secret.csv", "..\\x.csv"])
def test_files_stay_under_the_data_root(tmp_path, registry, rel, monkeypatch):
    monkeypatch.delenv("CMM_BT_ALLOW_EXTERNAL_FILES", raising=False)
    manifest = DatasetManifest(name="m", source="generic", files=[rel], path=tmp_path / "m.yaml")
    with pytest.raises(ConfigError, match=r"m\.yaml: files\.0: .* is outside the data root .*--allow-external-files"):
        resolve_files(manifest, tmp_path / "root")
    with pytest.raises(ConfigError):
        load_market(manifest, tmp_path / "root", registry, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_external_files_only_on_request(tmp_path, registry, monkeypatch):
    monkeypatch.delenv("CMM_BT_ALLOW_EXTERNAL_FILES", raising=False)
    outside = tmp_path / "elsewhere"
    _manifest(outside, _book())
    manifest = DatasetManifest(name="ext", source="generic", files=[str(outside / "mine" / "book.csv")],
                               instrument={"symbol": "X", "tick_size": 0.5}, path=tmp_path / "ext.yaml")
    root = tmp_path / "root"
    with pytest.raises(ConfigError, match="outside the data root"):
        resolve_files(manifest, root)
    assert resolve_files(manifest, root, allow_external=True) == [outside / "mine" / "book.csv"]
    monkeypatch.setenv("CMM_BT_ALLOW_EXTERNAL_FILES", "1")
    assert len(load_market(manifest, root, registry, tmp_path / "cache").events) > 0


def test_plugin_output_out_of_range_is_refused_before_caching():
    ev = make_events(exch_ts=[1, 2], local_ts=[1, 2], ev=[0, 0], side=[1, -1], price=[100, -(2**63)], qty=[1.0, 1.0])
    manifest = DatasetManifest(name="p", source="thirdparty", path=Path("p.yaml"))
    with pytest.raises(DataError, match=r"p\.yaml: price: data plugin 'thirdparty' returned an invalid event at row 1"):
        check_market(MarketData(ev, Instrument("X", 1.0)), manifest)
    ev = make_events(exch_ts=[1, 2], local_ts=[1, 2], ev=[0, 0], side=[1, -1], price=[100, 101], qty=[1.0, np.nan])
    with pytest.raises(CmmBtError, match="qty"):
        check_market(MarketData(ev, Instrument("X", 1.0)), manifest)


def test_inverse_instrument_survives_the_cache(tmp_path, registry, data_root):
    from cmm_bt.data.manifest import load_manifest

    manifest = load_manifest("binance-cm-btcusd-perp")
    assert manifest.instrument.build().inverse
    first = load_market(manifest, Path(data_root), registry, tmp_path)
    cached = load_market(manifest, Path(data_root), registry, tmp_path)
    assert first.instrument == cached.instrument == Instrument("BTCUSD_PERP", 0.1, 100.0, 1.0, "BTC", "inverse")
