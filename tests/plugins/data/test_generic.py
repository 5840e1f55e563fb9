from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.schema import BOOK, TRADE, Instrument
from cmm_bt.errors import ConfigError, DataError
from cmm_bt_plugins.data.generic import GenericSnapshots


def _load(files, instrument=Instrument("X", 0.5), **params):
    return GenericSnapshots(GenericSnapshots.Config(**params)).load([Path(f) for f in files], instrument, Path("."))


def _snaps(**over) -> pd.DataFrame:
    df = pd.DataFrame({
        "ts": ["2024-01-02T09:00:00Z", "2024-01-02T09:00:01Z", "2024-01-02T09:00:02Z"],
        "bid_price_1": [100.0, 100.5, 100.0], "bid_qty_1": [1.0, 2.0, 3.0],
        "bid_price_2": [99.5, 100.0, np.nan], "bid_qty_2": [4.0, 1.0, np.nan],
        "ask_price_1": [101.0, 101.0, 101.5], "ask_qty_1": [2.0, 2.0, 2.0],
        "ask_price_2": [101.5, 101.5, 102.0], "ask_qty_2": [5.0, 5.0, 5.0],
    })
    for k, v in over.items():
        df[k] = v
    return df


def test_csv_and_parquet_with_trades(tmp_path):
    _snaps().to_csv(tmp_path / "book.csv", index=False)
    ts = pd.to_datetime(["2024-01-02T09:00:00.5Z", "2024-01-02T09:00:01.5Z"]).as_unit("ns").asi8
    pd.DataFrame({"ts": ts, "price": [101.0, 100.5], "qty": [1.0, 2.0], "side": ["B", "s"]}).to_parquet(tmp_path / "t.parquet")
    md = _load([tmp_path / "book.csv", tmp_path / "t.parquet"], feed_latency_us=10)
    ev = md.events
    assert ev["exch_ts"].iloc[0] == pd.Timestamp("2024-01-02T09:00:00Z").value
    assert (ev["local_ts"] - ev["exch_ts"] == 10_000).all()
    tr = ev[ev["ev"] == TRADE]
    assert tr["side"].tolist() == [1, -1] and tr["price"].tolist() == [202, 201]
    assert md.meta == {**md.meta, "snapshots": 3, "trades": 2}
    _snaps().to_parquet(tmp_path / "book.parquet")
    assert _load([tmp_path / "book.parquet"], feed_latency_us=10).events.equals(ev[ev["ev"] != TRADE].reset_index(drop=True))


def test_sessions_and_instrument(tmp_path):
    df = _snaps(ts=["2024-01-02T09:00:00Z", "2024-01-02T09:00:01Z", "2024-01-02T10:00:00Z"])
    df.to_csv(tmp_path / "mine.csv.gz", index=False)
    md = _load([tmp_path / "mine.csv.gz"], instrument=None, tick_size=0.5, session_gap_s=60)
    assert md.instrument.symbol == "mine" and len(md.sessions) == 2
    with pytest.raises(ConfigError, match="tick size"):
        _load([tmp_path / "mine.csv.gz"], instrument=None)


def test_bad_inputs(tmp_path):
    _snaps().drop(columns=["ask_qty_2"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match=r"a\.csv: ask_qty_2: missing column: ask_qty_2"):
        _load([tmp_path / "a.csv"])
    _snaps(ts=["2024-01-02T09:00:01Z", "2024-01-02T09:00:00Z", "2024-01-02T09:00:02Z"]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"b\.csv: ts: timestamps go backwards at row 1"):
        _load([tmp_path / "b.csv"])
    _snaps(ask_price_2=[101.5, -1.0, 102.0]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match=r"c\.csv: ask_price: non-positive price at row 1"):
        _load([tmp_path / "c.csv"])
    _snaps(ts=["2024-01-02T09:00:00Z", "yesterday", "2024-01-02T09:00:02Z"]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"d\.csv: ts: unparseable timestamp at row 1"):
        _load([tmp_path / "d.csv"])
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(DataError, match=r"e\.txt: unsupported file type"):
        _load([tmp_path / "e.txt"])
    _snaps().to_parquet(tmp_path / "f.parquet")
    data = (tmp_path / "f.parquet").read_bytes()
    (tmp_path / "f.parquet").write_bytes(data[:100])
    with pytest.raises(DataError, match=r"f\.parquet: cannot read parquet file"):
        _load([tmp_path / "f.parquet"])
    pd.DataFrame({"ts": [1, 2], "price": [1.0, 1.0], "qty": [1.0, 1.0], "side": ["B", "?"]}).to_csv(tmp_path / "t.csv", index=False)
    _snaps().to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: side: unknown side '\?' at row 1"):
        _load([tmp_path / "ok.csv", tmp_path / "t.csv"])


def test_crossed_row_dropped(tmp_path):
    _snaps(bid_price_1=[100.0, 101.5, 100.0]).to_csv(tmp_path / "x.csv", index=False)
    with pytest.warns(UserWarning, match=r"x\.csv: dropped 1 crossed book row"):
        md = _load([tmp_path / "x.csv"])
    assert md.meta["dropped_crossed_rows"] == 1 and md.meta["snapshots"] == 2
    assert (md.events["ev"] == BOOK).sum() > 0


# ----------------------------------------------------------------- issue 13: hostile input
@pytest.mark.parametrize("bad", [1e300, np.inf])
def test_snapshot_prices_beyond_int64_ticks_name_file_and_row(tmp_path, bad):
    _snaps(ask_price_2=[101.5, bad, 102.0]).to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(DataError, match=r"big\.csv: ask_price: price out of range at row 1 \(ask_price_2\)"):
        _load([tmp_path / "big.csv"])  # not an empty level, not -2**63


@pytest.mark.parametrize("bad", [1e300, np.inf])
def test_trade_prices_beyond_int64_ticks_name_file_and_row(tmp_path, bad):
    _snaps().to_csv(tmp_path / "ok.csv", index=False)
    pd.DataFrame({"ts": [1, 2], "price": [101.0, bad], "qty": [1.0, 1.0], "side": ["B", "S"]}).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: price: price out of range at row 1"):
        _load([tmp_path / "ok.csv", tmp_path / "t.csv"])


@pytest.mark.parametrize(("qty", "message"), [(-1.0, "negative quantity at row 1"),
                                              (np.nan, "missing, non-finite or out-of-range quantity at row 1")])
def test_book_quantities_negative_or_nan_are_errors_not_empty_levels(tmp_path, qty, message):
    _snaps(bid_qty_1=[1.0, qty, 3.0]).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(DataError, match=rf"q\.csv: bid_qty: {message} \(bid_qty_1\)"):
        _load([tmp_path / "q.csv"])
    _snaps(bid_qty_2=[4.0, 1.0, np.nan]).to_csv(tmp_path / "ok.csv", index=False)  # NaN of an empty level: fine
    _load([tmp_path / "ok.csv"])


def test_trade_qty_error_says_qty(tmp_path):
    _snaps().to_csv(tmp_path / "ok.csv", index=False)
    pd.DataFrame({"ts": [1, 2], "price": [101.0, 101.0], "qty": [1.0, 0.0], "side": ["B", "S"]}).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: qty: non-positive quantity at row 1") as err:
        _load([tmp_path / "ok.csv", tmp_path / "t.csv"])
    assert "price" not in str(err.value)


def test_header_only_book_is_an_error(tmp_path):
    _snaps().iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    pd.DataFrame({"ts": [1], "price": [101.0], "qty": [1.0], "side": ["B"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"empty\.csv: no data rows"):
        _load([tmp_path / "empty.csv", tmp_path / "t.csv"])
    with pytest.raises(DataError, match=r"empty\.csv: no data rows"):
        _load([tmp_path / "empty.csv"])


def test_tick_size_off_the_price_grid(tmp_path):
    n = 200
    ts = pd.Timestamp("2024-01-02").value + np.arange(n) * 10**8
    steps = 100 + 0.05 * (np.arange(n) % 7)
    df = pd.DataFrame({"ts": ts, "bid_price_1": steps, "bid_qty_1": 1.0, "ask_price_1": steps + 0.05, "ask_qty_1": 1.0})
    df.to_csv(tmp_path / "grid.csv", index=False)
    with pytest.raises(DataError, match=r"grid\.csv: bid_price: .*% \) are not multiples of the tick size 0\.03|"
                                        r"grid\.csv: bid_price: .* are not multiples of the tick size 0\.03"):
        _load([tmp_path / "grid.csv"], instrument=Instrument("X", 0.03))
    assert len(_load([tmp_path / "grid.csv"], instrument=Instrument("X", 0.05)).events) > 0


def test_non_numeric_cells_name_column_and_row(tmp_path):
    _snaps(bid_qty_1=["1", "lots", "3"]).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match=r"s\.csv: bid_qty_1: non-numeric value at row 1$"):
        _load([tmp_path / "s.csv"])
