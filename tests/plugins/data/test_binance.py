from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cmm_bt.data.schema import CLEAR, TRADE
from cmm_bt.data.topofbook import top_of_book
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.binance import BinanceCapture, ts_unit_ns


def _load(files, **params):
    return BinanceCapture(BinanceCapture.Config(**params)).load([Path(f) for f in files], None, Path("."))


def _head(src: Path, n: int, start: int = 0) -> list[bytes]:
    out = []
    with gzip.open(src, "rb") as fh:
        for i, line in enumerate(fh):
            if i >= start + n:
                break
            if i >= start:
                out.append(line)
    return out


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


@pytest.fixture(scope="module")
def usdm_lines(data_root):
    return _head(data_root / "binance/usdm/btcusdt_20240808.gz", 2500)  # REST snapshot on line 55


def test_usdm_slice_snapshot_book_and_trades(usdm_lines, tmp_path):
    md = _load([_write(tmp_path / "btcusdt_20240808.gz", usdm_lines)])
    ev, meta = md.events, md.meta
    assert md.instrument.symbol == "BTCUSDT" and md.instrument.tick_size == 0.1
    assert meta["market"] == "usdm" and meta["snapshots"] == 1 and meta["depth_gaps"] == 0
    assert meta["depth_dropped_before_snapshot"] > 0
    assert meta["ignored_messages"]["bookTicker"] > 0
    assert ev["exch_ts"].is_monotonic_increasing
    assert (ev["local_ts"] >= ev["exch_ts"]).all() and meta["local_clock_shift_ns"] > 10**9  # clock ~1.3 s behind
    assert (ev["ev"] == CLEAR).sum() == 2
    # trades: count, aggressor from `m`, prices in ticks
    raw = [json.loads(line.split(b" ", 1)[1]) for line in usdm_lines]
    trades = [r["data"] for r in raw if r.get("data", {}).get("e") == "trade"]
    tr = ev[ev["ev"] == TRADE]
    assert len(tr) == len(trades)
    assert tr["side"].tolist() == [-1 if t["m"] else 1 for t in sorted(trades, key=lambda t: t["T"])]
    assert set(tr["price"]) == {round(float(t["p"]) / 0.1) for t in trades}
    # the book after the snapshot is never crossed once all events of a timestamp are applied
    bb, ba, _, _ = top_of_book(ev)
    ts = ev["exch_ts"].to_numpy()
    end = np.r_[ts[1:] != ts[:-1], True] & (bb > 0) & (ba > 0)
    assert end.sum() > 100 and (bb[end] < ba[end]).all()


def test_pair_of_files_equals_one_file(usdm_lines, tmp_path):
    one = _load([_write(tmp_path / "one.gz", usdm_lines)])
    a = _write(tmp_path / "a.gz", usdm_lines[:1200])
    b = _write(tmp_path / "b.gz", usdm_lines[1200:])
    two = _load([a, b])
    assert two.events.equals(one.events)
    assert two.meta["depth_gaps"] == 0


def test_gaps_in_the_depth_sequence_are_counted(usdm_lines, tmp_path):
    depth = [i for i, line in enumerate(usdm_lines) if b"depthUpdate" in line]
    drop = depth[len(depth) // 2]
    md = _load([_write(tmp_path / "gap.gz", usdm_lines[:drop] + usdm_lines[drop + 1:])])
    assert md.meta["depth_gaps"] == 1


def test_spot_pair_and_microsecond_files(data_root, tmp_path):
    spot = _head(data_root / "binance/spot/btcusdt_20240808.gz", 1500)
    md = _load([_write(tmp_path / "spot.gz", spot)])
    assert md.meta["market"] == "spot" and md.meta["depth_sequence"] == "U/u" and md.instrument.tick_size == 0.01
    assert md.meta["snapshots"] == 1 and md.meta["depth_gaps"] == 0
    old = _head(data_root / "binance/usdm/btcusdt_20230404.dat.gz", 800)  # us timestamps
    assert ts_unit_ns(int(old[0].split(b" ")[0])) == 1000
    md = _load([_write(tmp_path / "old.dat.gz", old)])
    lat = md.events["local_ts"] - md.events["exch_ts"]
    assert lat.median() < 1e9  # local times were scaled to ns
    assert abs(md.events["exch_ts"].iloc[0] - int(old[0].split(b" ")[0]) * 1000) < 60 * 10**9


def test_coinm_quantities_are_contracts(data_root, tmp_path):
    cm = _head(data_root / "binance/cm/btcusd_perp_20240808.gz", 400)
    md = _load([_write(tmp_path / "cm.gz", cm)])
    assert md.meta["market"] == "cm" and md.instrument.symbol == "BTCUSD_PERP" and md.instrument.tick_size == 0.1
    q = md.events["qty"].to_numpy()
    assert (q == np.round(q)).all()
    # an inverse contract of 100 USD, PnL in BTC; another contract size by option
    inst = md.instrument
    assert (inst.contract, inst.multiplier, inst.currency, inst.lot_size) == ("inverse", 100.0, "BTC", 1.0)
    assert _load([tmp_path / "cm.gz"], contract_size=10.0).instrument.multiplier == 10.0


def test_no_snapshot_warns(usdm_lines, tmp_path):
    with pytest.warns(UserWarning, match="no REST depth snapshot"):
        md = _load([_write(tmp_path / "nosnap.gz", usdm_lines[:50])])
    assert md.meta["snapshots"] == 0


def test_corrupted_gzip_names_file(usdm_lines, tmp_path):
    data = gzip.compress(b"".join(usdm_lines))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"bad\.gz: cannot read gzip file at line \d+") as err:
        _load([bad])
    assert "\n" not in str(err.value)


def test_bad_lines_name_file_and_line(usdm_lines, tmp_path):
    lines = list(usdm_lines[:100])
    lines[9] = lines[9][:40] + b"\n"
    with pytest.raises(DataError, match=r"x\.gz: malformed line 10"):
        _load([_write(tmp_path / "x.gz", lines)])
    lines = list(usdm_lines[:100])
    lines[20], lines[21] = lines[21], lines[20]
    with pytest.raises(DataError, match=r"y\.gz: local_ts: timestamps go backwards at line 22"):
        _load([_write(tmp_path / "y.gz", lines)])
    lines = list(usdm_lines[:100])
    k = next(i for i, line in enumerate(lines) if b'"e":"trade"' in line)
    lines[k] = lines[k].replace(b'"p":"', b'"p":"-')
    with pytest.raises(DataError, match=rf"z\.gz: price: non-positive trade price at line {k + 1}"):
        _load([_write(tmp_path / "z.gz", lines)])
    k = next(i for i, line in enumerate(lines) if b"depthUpdate" in line and b'"b":[["' in line)
    lines = list(usdm_lines[:100])
    lines[k] = lines[k].replace(b'"b":[["', b'"b":[["0', 1).replace(b'"b":[["0', b'"b":[["-', 1)
    with pytest.raises(DataError, match=rf"w\.gz: price: non-positive price at line {k + 1}"):
        _load([_write(tmp_path / "w.gz", lines)])


@pytest.mark.parametrize("market,tick,n", [("usdm", 0.1, 4000), ("spot", 0.01, 4000)])
def test_book_matches_bookticker_at_equal_update_ids(data_root, tmp_path, market, tick, n):
    """Differential check: where a bookTicker's update id ends a depth diff, best levels agree."""
    lines = _head(data_root / f"binance/{market}/btcusdt_20240808.gz", n)
    md = _load([_write(tmp_path / "x.gz", lines)])
    ev = md.events
    bb, ba, _, _ = top_of_book(ev)
    ts = ev["exch_ts"].to_numpy()
    depth, ticker = {}, []
    for line in lines:
        msg = json.loads(line.split(b" ", 1)[1])
        d = msg.get("data", {})
        if d.get("e") == "depthUpdate":
            depth[d["u"]] = int(d.get("T") or d["E"]) * 1_000_000
        elif msg.get("stream", "").endswith("bookTicker"):
            ticker.append((d["u"], round(float(d["b"]) / tick), round(float(d["a"]) / tick)))
    snap_ts = ts[np.argmax(ev["ev"].to_numpy() == CLEAR)]
    checked = 0
    for u, bid, ask in ticker:
        if u in depth and depth[u] > snap_ts:
            i = np.searchsorted(ts, depth[u], side="right") - 1
            assert (bb[i], ba[i]) == (bid, ask)
            checked += 1
    assert checked >= 10


# ----------------------------------------------------------------- issue 13: hostile input
@pytest.mark.parametrize("payload", [b"[1, 2, 3]", b'"hello"', b"42", b'{"stream": "x@trade", "data": [1]}'])
def test_json_that_is_not_an_object_is_a_data_error(usdm_lines, tmp_path, payload):
    lines = list(usdm_lines[:100])
    ts = lines[9].split(b" ", 1)[0]
    lines[9] = ts + b" " + payload + b"\n"
    with pytest.raises(DataError, match=r"j\.gz: unexpected message at line 10 \(.*not an object\)"):
        _load([_write(tmp_path / "j.gz", lines)])


@pytest.mark.parametrize("big", [b"1e300", b"inf"])
def test_prices_beyond_int64_ticks_name_file_and_line(usdm_lines, tmp_path, big):
    lines = list(usdm_lines[:300])
    k = next(i for i, line in enumerate(lines) if b'"e":"trade"' in line)
    lines[k] = re.sub(rb'"p":"[0-9.]+"', b'"p":"' + big + b'"', lines[k], count=1)
    with pytest.raises(DataError, match=rf"t\.gz: price: price out of range at line {k + 1}"):
        _load([_write(tmp_path / "t.gz", lines)])
    lines = list(usdm_lines[:300])
    k = next(i for i, line in enumerate(lines) if b"depthUpdate" in line and b'"b":[["' in line)
    lines[k] = lines[k].replace(b'"b":[["', b'"b":[["' + big + b'","1"],["', 1)
    with pytest.raises(DataError, match=rf"d\.gz: price: price out of range at line {k + 1}"):
        _load([_write(tmp_path / "d.gz", lines)])


def test_non_numeric_price_names_the_line_without_echoing_it(usdm_lines, tmp_path):
    lines = list(usdm_lines[:300])
    k = next(i for i, line in enumerate(lines) if b'"e":"trade"' in line)
    lines[k] = re.sub(rb'"p":"[0-9.]+"', b'"p":"root:x:0:0"', lines[k], count=1)
    with pytest.raises(DataError, match=rf"n\.gz: price: non-numeric price at line {k + 1}$") as err:
        _load([_write(tmp_path / "n.gz", lines)])
    assert "x:0:0" not in str(err.value)
