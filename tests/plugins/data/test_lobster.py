from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cmm_bt.data.schema import TRADE
from cmm_bt.data.topofbook import top_of_book
from cmm_bt.errors import DataError
from cmm_bt_plugins.data.lobster import LobsterCsv

STEM = "AAPL_2012-06-21_34200000_57600000"


def _load(files):
    return LobsterCsv(LobsterCsv.Config()).load([Path(f) for f in files], None, Path("."))


@pytest.fixture()
def pair(data_root):
    d = data_root / "lobster"
    return d / f"{STEM}_message_10.csv", d / f"{STEM}_orderbook_10.csv"


def test_real_sample(pair):
    md = _load(pair)
    msg = pd.read_csv(pair[0], header=None)
    book = pd.read_csv(pair[1], header=None)
    ev = md.events
    assert md.instrument.symbol == "AAPL" and md.instrument.tick_size == 0.01
    # 09:30 New York (EDT) = 13:30 UTC
    assert pd.Timestamp(md.start_ns) == pd.Timestamp("2012-06-21 13:30:00") + pd.Timedelta(seconds=msg[0][0] - 34200)
    ex = msg[msg[1].isin([4, 5])]
    tr = ev[ev["ev"] == TRADE]
    assert len(tr) == len(ex) == md.meta["trades"]
    assert tr["side"].tolist() == (-ex[5]).tolist()  # buy limit order executed => seller-initiated
    assert tr["price"].tolist() == (ex[4] // 100).tolist()
    bb, ba, _, _ = top_of_book(ev)
    assert bb[-1] == book[2].iloc[-1] // 100 and ba[-1] == book[0].iloc[-1] // 100


def test_bad_pairs(pair, tmp_path):
    msg, book = (shutil.copy(p, tmp_path / p.name) for p in pair)
    lines = Path(book).read_text().splitlines()
    Path(book).write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(DataError, match=r"orderbook_10\.csv: rows: orderbook has 994 rows but the message file 999"):
        _load([msg, book])
    with pytest.raises(DataError, match="need one message file and one orderbook file"):
        _load([msg])
    odd = tmp_path / "foo.csv"
    odd.write_text("1,2\n")
    with pytest.raises(DataError, match=r"foo\.csv: files: file name is not"):
        _load([odd, book])
    m = pd.read_csv(pair[0], header=None)
    m.iloc[10, 0] = m.iloc[5, 0] - 1
    m.to_csv(msg, header=False, index=False)
    shutil.copy(pair[1], book)
    with pytest.raises(DataError, match=r"message_10\.csv: time: timestamps go backwards at row 10"):
        _load([msg, book])
