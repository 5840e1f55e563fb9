from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data.schema import Instrument, TRADE
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.china import ChinaDataYes

H = 3600 * 10**9


def _load(files, data_root, instrument=None, **params):
    return ChinaDataYes(ChinaDataYes.Config(**params)).load([Path(f) for f in files], instrument, Path(data_root))


@pytest.fixture(scope="module")
def if_day(data_root):
    return pd.read_csv(data_root / "china/tick_20170413/IF1704_20170413.csv.gz", index_col=0)


def _write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)
    return path


def test_real_if_day_sessions_trades_and_contract(data_root, if_day, tmp_path):
    f = _write(if_day.iloc[:3000], tmp_path / "tick_20170413/IF1704_20170413.csv.gz")
    md = _load([f], data_root)  # contract file found under the data root
    assert md.instrument.tick_size == 0.2 and md.instrument.multiplier == 300 and md.instrument.currency == "CNY"
    assert md.meta["contract_files"][0].endswith("contract_20170413/IF1704.csv")
    ev = md.events
    # the 09:29 auction snapshot is dropped; the first kept row is at 09:30:00.200 Beijing = 01:30:00.200 UTC
    first = pd.Timestamp(int(ev["exch_ts"].iloc[0]))
    assert first == pd.Timestamp("2017-04-13 01:30:00.200")
    assert md.sessions[0][0] == pd.Timestamp("2017-04-13 01:30").value
    # trades: quantities add up to the volume traded between the auction and the last kept row
    kept = if_day.iloc[:3000]
    kept = kept[(kept.bidPrice1 > 0) & (kept.askPrice1 > 0)]
    auction_vol = kept[kept.dataTime < "09:30:00"].volume.iloc[-1]
    tr = ev[ev["ev"] == TRADE]
    assert tr["qty"].sum() == kept.volume.iloc[-1] - auction_vol
    # VWAP prices are on the tick grid and near the book
    assert (tr["price"] > 3400 / 0.2).all() and (tr["price"] < 3600 / 0.2).all()
    assert set(np.unique(tr["side"])) <= {-1, 1}
    # a tie: the VWAP equals both the previous and the current snapshot's mid
    mid = (kept.bidPrice1 + kept.askPrice1) / 2
    dv = kept.volume.diff()
    vwap = kept.value.diff() / (dv * 300)
    traded = (kept.dataTime >= "09:30:00") & (dv > 0)
    assert traded.sum() == len(tr)
    ties = int((traded & (vwap == mid.shift()) & (vwap == mid)).sum())
    assert ties > 0 and md.meta["trade_side_ties"] == ties


def test_trade_inference_rule(tmp_path, data_root):
    rows = [  # time, volume, value, bid, ask
        ("09:29:00", 10, 10 * 300 * 100.0, 99.8, 100.2),  # auction
        ("09:30:00", 12, 12 * 300 * 100.0 + 2 * 300 * 0.2, 99.8, 100.2),  # 2 lots at 100.2 > mid 100 -> buy
        ("09:30:01", 15, 12 * 300 * 100.0 + 2 * 300 * 0.2 + 3 * 300 * 99.8, 99.8, 100.2),  # 3 @ 99.8 -> sell
        ("09:30:02", 15, 12 * 300 * 100.0 + 2 * 300 * 0.2 + 3 * 300 * 99.8, 99.6, 100.2),  # no trade
        ("09:30:03", 16, 12 * 300 * 100.0 + 2 * 300 * 0.2 + 3 * 300 * 99.8 + 300 * 99.9, 99.6, 100.2),  # at mid 99.9: tie
        ("15:00:00", 16, 0, 99.6, 100.2),
        ("15:20:00", 0, 0, 99.6, 100.2),  # trailing zero-volume row
    ]
    df = pd.DataFrame({
        "dataDate": "2017-04-13", "dataTime": [r[0] for r in rows], "dataMillisec": 0, "instrumentID": "IF1704",
        "exchangeCD": "CCFX", "volume": [r[1] for r in rows], "value": [r[2] for r in rows], "clearingDay": "2017-04-13",
        "bidPrice1": [r[3] for r in rows], "bidVolume1": 1, "askPrice1": [r[4] for r in rows], "askVolume1": 2,
    })
    f = _write(df, tmp_path / "IF1704_20170413.csv")
    md = _load([f], data_root, instrument=Instrument("IF", 0.2, 300.0))
    tr = md.events[md.events["ev"] == TRADE]
    assert tr["qty"].tolist() == [2, 3, 1]
    assert tr["price"].tolist() == [501, 499, round(99.9 / 0.2)]
    assert tr["side"].tolist() == [1, -1, -1]  # the tie carries the previous side
    assert md.meta["trade_side_ties"] == 1 and md.meta["dropped_volume_reset_rows"] == 1
    # sessions with data: (session start, last snapshot in it)
    assert md.sessions == [(pd.Timestamp("2017-04-13 01:30").value, pd.Timestamp("2017-04-13 01:30:03").value),
                           (pd.Timestamp("2017-04-13 05:00").value, pd.Timestamp("2017-04-13 07:00").value)]


def test_several_days_with_roll_and_night_session(data_root):
    days = [data_root / "china/tick_20170421/IF1704_20170421.csv.gz", data_root / "china/tick_20170424/IF1705_20170424.csv.gz"]
    md = _load(days, data_root)  # IF1705 has no metadata file: IF1704's terms are used
    assert md.instrument.symbol == "IF1704+IF1705" and md.meta["instruments"] == ["IF1704", "IF1705"]
    assert len(md.sessions) == 4 and (md.events["ev"] == 2).sum() == 4  # a fresh book each day
    cf = _load([data_root / "china/tick_20170414/CF709_20170414.csv.gz"], data_root)
    starts = [pd.Timestamp(s) for s, _ in cf.sessions]
    assert starts[0] == pd.Timestamp("2017-04-13 13:00")  # 21:00 Beijing on the previous evening
    assert len(cf.sessions) == 4


def test_bad_files_name_file_and_row(if_day, tmp_path, data_root):
    inst = Instrument("IF", 0.2, 300.0)
    bad = if_day.iloc[:200].drop(columns=["askPrice1"])
    with pytest.raises(DataError, match=r"a\.csv\.gz: askPrice1: missing column: askPrice1"):
        _load([_write(bad, tmp_path / "a.csv.gz")], data_root, inst)
    bad = if_day.iloc[:200].copy()
    bad.iloc[100, bad.columns.get_loc("dataTime")] = "09:00:00"
    with pytest.raises(DataError, match=r"b\.csv\.gz: dataTime: timestamps go backwards at row 100"):
        _load([_write(bad, tmp_path / "b.csv.gz")], data_root, inst)
    bad = if_day.iloc[:200].copy()
    bad.iloc[150, bad.columns.get_loc("bidPrice1")] = -1.0
    with pytest.raises(DataError, match=r"c\.csv\.gz: bidPrice1: non-positive price at row 150"):
        _load([_write(bad, tmp_path / "c.csv.gz")], data_root, inst)
    raw = _write(if_day.iloc[:2000], tmp_path / "d.csv.gz").read_bytes()
    (tmp_path / "d.csv.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"d\.csv\.gz: cannot read CSV file"):
        _load([tmp_path / "d.csv.gz"], data_root, inst)
    with pytest.raises(DataError, match=r"no contract metadata file for ZZ1704"):
        z = if_day.iloc[:50].assign(instrumentID="ZZ1704")
        _load([_write(z, tmp_path / "z" / "e.csv.gz")], tmp_path)


def test_crossed_rows_dropped(if_day, tmp_path, data_root):
    bad = if_day.iloc[:400].copy()
    bad.iloc[300, bad.columns.get_loc("bidPrice1")] = bad.iloc[300]["askPrice1"] + 1
    with pytest.warns(UserWarning, match="dropped 1 crossed"):
        md = _load([_write(bad, tmp_path / "x.csv.gz")], data_root, Instrument("IF", 0.2, 300.0))
    assert md.meta["dropped_crossed_rows"] == 1


# ----------------------------------------------------------------- issue 13: hostile input
INST = Instrument("IF", 0.2, 300.0)


def _quoted_row(df: pd.DataFrame, k: int) -> int:
    """The k-th row of ``df`` quoted on both sides inside the morning session."""
    ok = (df["bidPrice1"] > 0) & (df["askPrice1"] > 0) & (df["dataTime"] >= "09:31:00")
    return int(np.flatnonzero(ok.to_numpy())[k])


@pytest.mark.parametrize("bad", [1e300, np.inf])
def test_snapshot_price_beyond_int64_ticks(if_day, tmp_path, data_root, bad):
    df = if_day.iloc[:400].copy()
    r = _quoted_row(df, 10)
    df.iloc[r, df.columns.get_loc("askPrice1")] = bad
    with pytest.raises(DataError, match=rf"p\.csv\.gz: askPrice1: price out of range at row {r}"):
        _load([_write(df, tmp_path / "p.csv.gz")], data_root, INST)


def test_turnover_beyond_int64_ticks_names_the_row(if_day, tmp_path, data_root):
    df = if_day.iloc[:400].astype({"value": float, "volume": float})
    r = _quoted_row(df, 10)
    df.iloc[r:, df.columns.get_loc("value")] = 1e300  # cumulative: every later row too
    df.iloc[r, df.columns.get_loc("volume")] += 1  # a trade at this row
    with pytest.raises(DataError, match=rf"v\.csv\.gz: value: trade price \(turnover / volume / multiplier\) out of range at row {r}"):
        _load([_write(df, tmp_path / "v.csv.gz")], data_root, INST)
    df = if_day.iloc[:400].astype({"value": float})
    df.iloc[r, df.columns.get_loc("value")] = np.inf
    with pytest.raises(DataError, match=rf"w\.csv\.gz: value: negative, missing or non-finite turnover at row {r}"):
        _load([_write(df, tmp_path / "w.csv.gz")], data_root, INST)


def test_one_huge_cumulative_volume_does_not_drop_every_later_row(if_day, tmp_path, data_root):
    df = if_day.iloc[:1000].astype({"volume": float})
    r = _quoted_row(df, 10)
    df.iloc[r, df.columns.get_loc("volume")] = 1e15
    with pytest.raises(DataError, match=rf"x\.csv\.gz: volume: cumulative volume at row {r} is above that of the"):
        _load([_write(df, tmp_path / "x.csv.gz")], data_root, INST)
    df.iloc[r, df.columns.get_loc("volume")] = 1e300
    with pytest.raises(DataError, match=rf"y\.csv\.gz: volume: missing, non-finite or out-of-range quantity at row {r}"):
        _load([_write(df, tmp_path / "y.csv.gz")], data_root, INST)


def test_one_huge_cumulative_turnover_is_refused_not_skipped(if_day, tmp_path, data_root):
    df = if_day.iloc[:1000].astype({"value": float})
    r = _quoted_row(df, 10)
    df.iloc[r, df.columns.get_loc("value")] = 1e300  # one row: every later trade's turnover would be negative
    with pytest.raises(DataError, match=rf"t\.csv\.gz: value: cumulative value at row {r} is above that of the"):
        _load([_write(df, tmp_path / "t.csv.gz")], data_root, INST)


@pytest.mark.parametrize(("qty", "message"), [(-5.0, "negative quantity"),
                                              (np.nan, "missing, non-finite or out-of-range quantity")])
def test_book_quantities_negative_or_nan(if_day, tmp_path, data_root, qty, message):
    df = if_day.iloc[:400].astype({"bidVolume1": float})
    r = _quoted_row(df, 5)
    df.iloc[r, df.columns.get_loc("bidVolume1")] = qty
    with pytest.raises(DataError, match=rf"q\.csv\.gz: bidVolume1: {message} at row {r}"):
        _load([_write(df, tmp_path / "q.csv.gz")], data_root, INST)


def test_contract_file_must_stay_under_the_data_root(if_day, tmp_path, data_root, monkeypatch):
    monkeypatch.delenv("CMM_BT_ALLOW_EXTERNAL_FILES", raising=False)
    f = _write(if_day.iloc[:100], tmp_path / "c.csv.gz")
    with pytest.raises(Exception, match="outside the data root"):
        _load([f], data_root, contract_file="../../etc/passwd")


def test_each_day_is_a_part_and_adding_a_day_normalises_only_that_day(data_root, tmp_path, monkeypatch):
    """Per-day parts give the events of the whole load; a new day is normalised alone (the others come from
    the cache), unless it changes the instrument (a roll: IF1704+IF1705), which is part of every day's key."""
    import yaml

    from cmm_bt.api import Session
    from cmm_bt.data.loading import load_market
    from cmm_bt.data.manifest import load_manifest

    day = {d: f"china/tick_201704{d}/IF170{4 if d != '24' else 5}_201704{d}.csv.gz" for d in ("18", "19", "20", "24")}
    registry = Session.start().registry
    normalised = []
    real = ChinaDataYes.load

    def counting(self, files, instrument, root):
        normalised.append(",".join(Path(f).name[11:15] for f in files))
        return real(self, files, instrument, root)

    monkeypatch.setattr(ChinaDataYes, "load", counting)

    def load(*days):
        normalised.clear()
        path = tmp_path / "if.yaml"
        path.write_text(yaml.safe_dump({"name": "if-days", "source": "china-datayes", "files": [day[d] for d in days]}))
        return load_market(load_manifest(str(path)), data_root, registry, tmp_path / "cache")

    load("18", "19")
    assert normalised == ["0418", "0419"]
    load("18", "19")
    assert normalised == []
    three = load("18", "19", "20")
    assert normalised == ["0420"]
    whole = real(ChinaDataYes(ChinaDataYes.Config()), [data_root / day[d] for d in ("18", "19", "20")], None, data_root)
    pd.testing.assert_frame_equal(three.events, whole.events, check_exact=True)
    assert three.sessions == whole.sessions and three.instrument == whole.instrument
    rolled = load("19", "20", "24")
    assert normalised == ["0419", "0420", "0424"] and rolled.instrument.symbol == "IF1704+IF1705"
