from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.schema import BOOK, TRADE
from cmm_bt.data.topofbook import top_of_book
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.cme import CmeParquet


def _load(files, **params):
    return CmeParquet(CmeParquet.Config(**params)).load([Path(f) for f in files], None, Path("."))


@pytest.fixture(scope="module")
def gold_slice(data_root, tmp_path_factory):
    """The first 2,000 quotes and the trades up to them, in the original layout (2-level index)."""
    d = tmp_path_factory.mktemp("cme")
    q = pd.read_parquet(data_root / "cme/gc_m3_20230501_quotes.parquet").iloc[:2000]
    t = pd.read_parquet(data_root / "cme/gc_m3_20230501_trades.parquet")
    t = t[t.index.get_level_values("transact_time") <= q.index.get_level_values("transact_time")[-1]]
    q.to_parquet(d / "gc_m3_20230501_quotes.parquet")
    t.to_parquet(d / "gc_m3_20230501_trades.parquet")
    return d / "gc_m3_20230501_quotes.parquet", d / "gc_m3_20230501_trades.parquet", q.reset_index(), t.reset_index()


def test_gold_slice_loads_with_derived_instrument_and_sides(gold_slice):
    qf, tf, q, t = gold_slice
    md = _load([qf, tf], feed_latency_us=250)
    ev = md.events
    assert md.instrument.symbol == "GCM3" and md.instrument.tick_size == 0.1 and md.instrument.multiplier == 100
    assert ev["exch_ts"].is_monotonic_increasing
    assert (ev["local_ts"] - ev["exch_ts"] == 250_000).all()
    trades = ev[ev["ev"] == TRADE]
    assert len(trades) == len(t) == md.meta["trades"]
    want = np.where(t["side"].to_numpy() == "B", -1, 1)
    assert trades["side"].tolist() == want.tolist()
    assert trades["price"].tolist() == np.rint(t["price"].to_numpy() / 0.1).astype(int).tolist()
    # the replayed best levels equal the quotes' level 0 at each snapshot time
    bb, ba, _, _ = top_of_book(ev)
    ts = q["transact_time"].to_numpy().astype("datetime64[ns]").view(np.int64)
    last = np.searchsorted(ev["exch_ts"].to_numpy(), ts, side="right") - 1
    assert (bb[last] == np.rint(q["bid_price_0"] / 0.1)).all()
    assert (ba[last] == np.rint(q["offer_price_0"] / 0.1)).all()
    # locked (bid == ask) snapshot rows are kept and counted; crossed ones would be dropped
    bid0, ask0 = np.rint(q["bid_price_0"] / 0.1), np.rint(q["offer_price_0"] / 0.1)
    both = (bid0 > 0) & (ask0 > 0)
    assert md.meta["locked_rows"] == int((both & (bid0 == ask0)).sum())
    assert md.meta["dropped_crossed_rows"] == int((both & (bid0 > ask0)).sum()) == 0


def test_gbp_layout_market_as_column(data_root, tmp_path):
    q = pd.read_parquet(data_root / "cme/6b_m3_20230503_quotes.parquet").iloc[:500]
    assert "market" in q.columns
    q.to_parquet(tmp_path / "6b_m3_20230503_quotes.parquet")
    md = _load([tmp_path / "6b_m3_20230503_quotes.parquet"])  # trades are optional
    assert md.instrument.tick_size == 0.0001 and md.instrument.multiplier == 62500
    assert (md.events["ev"] == BOOK).sum() > 500


def test_sessions_split_on_the_trading_break(tmp_path):
    ts = pd.to_datetime(["2023-05-01 20:59:00", "2023-05-01 20:59:30", "2023-05-01 22:00:00", "2023-05-01 22:00:01"])
    q = pd.DataFrame({"transact_time": ts, "bid_price_0": [10.0, 10.1, 10.0, 10.0], "offer_price_0": 10.2,
                      "bid_quantity_0": 1.0, "offer_quantity_0": 2.0}).set_index("transact_time")
    tr = pd.DataFrame({"transact_time": ts, "side": ["B", "O", "B", "O"], "price": 10.1, "quantity": 1.0})
    q.to_parquet(tmp_path / "gc_q.parquet")
    tr.to_parquet(tmp_path / "gc_t.parquet")
    md = _load([tmp_path / "gc_q.parquet", tmp_path / "gc_t.parquet"], tick_size=0.1)
    assert len(md.sessions) == 2
    assert md.sessions[0][1] == ts[1].value and md.sessions[1][0] == ts[2].value


def _quotes(tmp_path, **changes):
    ts = pd.date_range("2023-05-01", periods=4, freq="100ms")
    q = pd.DataFrame({"transact_time": ts, "bid_price_0": [10.0, 10.1, 10.0, 10.0], "offer_price_0": [10.2] * 4,
                      "bid_quantity_0": 1.0, "offer_quantity_0": 2.0})
    for k, v in changes.items():
        q[k] = v
    path = tmp_path / "gc_m3_x_quotes.parquet"
    q.to_parquet(path, index=False)
    return path


def test_truncated_parquet_is_one_line_error(gold_slice, tmp_path):
    bad = tmp_path / "gc_m3_bad_quotes.parquet"
    data = gold_slice[0].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"gc_m3_bad_quotes\.parquet: cannot read parquet file") as err:
        _load([bad])
    assert "\n" not in str(err.value)


def test_bad_quote_files_name_file_and_row(tmp_path):
    with pytest.raises(DataError, match=r"gc_m3_x_quotes\.parquet: transact_time: timestamps go backwards at row 2"):
        _load([_quotes(tmp_path, transact_time=pd.to_datetime(["2023-05-01 00:00:01", "2023-05-01 00:00:02",
                                                                 "2023-05-01 00:00:00", "2023-05-01 00:00:03"]))])
    with pytest.raises(DataError, match=r"gc_m3_x_quotes\.parquet: bid_price: non-positive price at row 1"):
        _load([_quotes(tmp_path, bid_price_0=[10.0, -10.0, 10.0, 10.0])])
    with pytest.raises(DataError, match=r"missing column: offer_quantity_0"):
        _load([_missing(tmp_path)])


def _missing(tmp_path):
    p = _quotes(tmp_path)
    pd.read_parquet(p).drop(columns="offer_quantity_0").to_parquet(p, index=False)
    return p


def test_crossed_rows_dropped_with_warning(tmp_path):
    p = _quotes(tmp_path, bid_price_0=[10.0, 10.3, 10.0, 10.2])
    with pytest.warns(UserWarning, match="dropped 1 crossed"):
        md = _load([p])
    assert md.meta["dropped_crossed_rows"] == 1 and md.meta["locked_rows"] == 1 and md.meta["snapshots"] == 3


def test_unknown_trade_side(tmp_path):
    q = _quotes(tmp_path)
    tr = pd.DataFrame({"transact_time": pd.date_range("2023-05-01", periods=2, freq="1s"), "side": ["B", "X"],
                       "price": 10.1, "quantity": 1.0})
    tr.to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(DataError, match=r"t\.parquet: side: unknown trade side 'X' at row 1"):
        _load([q, tmp_path / "t.parquet"])


@pytest.mark.parametrize("bad", [1e300, np.inf])
def test_prices_beyond_int64_ticks_and_bad_quantities(tmp_path, bad):
    with pytest.raises(DataError, match=r"gc_m3_x_quotes\.parquet: offer_price: price out of range at row 2"):
        _load([_quotes(tmp_path, offer_price_0=[10.2, 10.2, bad, 10.2])])
    with pytest.raises(DataError, match=r"gc_m3_x_quotes\.parquet: bid_quantity: negative quantity at row 3"):
        _load([_quotes(tmp_path, bid_quantity_0=[1.0, 1.0, 1.0, -1.0])])
