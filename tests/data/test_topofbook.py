from __future__ import annotations

import numpy as np

from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, TRADE, make_events
from cmm_bt.data.topofbook import NO_PRICE, top_of_book


def _ev(rows):
    a = np.array(rows, dtype=np.float64)
    return make_events(exch_ts=np.arange(len(rows)), ev=a[:, 0], side=a[:, 1], price=a[:, 2], qty=a[:, 3])


def test_best_levels_follow_sets_deletions_trades_and_clears():
    ev = _ev([
        (BOOK, BID, 100, 1), (BOOK, BID, 98, 2), (BOOK, ASK, 105, 3), (BOOK, ASK, 103, 4),
        (BOOK, BID, 100, 0),  # best bid deleted -> next live level 98
        (TRADE, 1, 103, 1),  # trades leave the book alone
        (BOOK, ASK, 103, 0), (BOOK, BID, 101, 5),
        (CLEAR, ASK, 0, 0), (BOOK, BID, 98, 0), (BOOK, BID, 101, 0),
    ])
    bb, ba, bq, aq = top_of_book(ev)
    assert bb.tolist() == [100, 100, 100, 100, 98, 98, 98, 101, 101, 101, NO_PRICE]
    assert ba.tolist() == [NO_PRICE, NO_PRICE, 105, 103, 103, 103, 105, 105, NO_PRICE, NO_PRICE, NO_PRICE]
    assert bq.tolist() == [1, 1, 1, 1, 2, 2, 2, 5, 5, 5, 0]
    assert aq.tolist()[:8] == [0, 0, 3, 4, 4, 4, 3, 3]


def test_far_apart_prices_need_no_dense_array():
    ev = _ev([(BOOK, BID, 1, 1), (BOOK, ASK, 10**12, 1), (BOOK, BID, 5 * 10**11, 2), (BOOK, BID, 5 * 10**11, 0)])
    bb, ba, _, _ = top_of_book(ev)
    assert bb.tolist() == [1, 1, 5 * 10**11, 1]
    assert ba.tolist() == [NO_PRICE, 10**12, 10**12, 10**12]
