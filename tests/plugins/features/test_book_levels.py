from __future__ import annotations

import numpy as np
import pytest

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, TRADE, make_events
from cmm_bt_plugins.features.book_levels import NO_LEVEL, top_levels_at


def _events(rows):
    ev, side, price, qty = zip(*rows)
    n = len(rows)
    return make_events(exch_ts=np.arange(n) * 10, ev=np.array(ev), side=np.array(side), price=np.array(price), qty=np.array(qty))


def test_top_levels_follow_updates_deletes_and_clear():
    events = _events([
        (BOOK, BID, 100, 5), (BOOK, BID, 99, 3), (BOOK, BID, 97, 1),
        (BOOK, ASK, 101, 4), (BOOK, ASK, 103, 2),
        (TRADE, BID, 101, 1),        # trades leave the book alone
        (BOOK, BID, 100, 0),         # delete best bid -> 99 becomes best
        (BOOK, ASK, 102, 7),         # new level inside
        (CLEAR, BID, 0, 0),          # drop the bid side
    ])
    bpx, bsz, apx, asz = top_levels_at(events, np.array([0, 3, 5, 6, 7, 8, 9]), 2)
    assert (bpx[0] == NO_LEVEL).all() and (apx[0] == NO_LEVEL).all()
    assert bpx[1].tolist() == [100, 99] and bsz[1].tolist() == [5, 3]
    assert apx[1].tolist() == [NO_LEVEL, NO_LEVEL]
    assert apx[2].tolist() == [101, 103] and asz[2].tolist() == [4, 2]
    assert bpx[3].tolist() == [100, 99]  # after the trade
    assert bpx[4].tolist() == [99, 97] and bsz[4].tolist() == [3, 1]
    assert apx[5].tolist() == [101, 102] and asz[5].tolist() == [4, 7]
    assert (bpx[6] == NO_LEVEL).all() and (bsz[6] == 0).all()
    assert apx[6].tolist() == [101, 102]


def test_counts_must_not_decrease():
    events = _events([(BOOK, BID, 100, 5)])
    with pytest.raises(ValueError):
        top_levels_at(events, np.array([1, 0]), 1)
