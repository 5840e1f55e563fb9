"""The price ladder and the book over it, with far-away levels."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import ASK, BID, Script, base_book, book, cfg, market
from numba import njit

from cmm_bt.components import Quotes
from cmm_bt.data.schema import BOOK, CLEAR, TRADE
from cmm_bt.engine.book import apply_market_event, build_ladder, new_bests
from cmm_bt.engine.loop import run_backtest
from cmm_bt.engine.stream import ladder_lookup


@pytest.mark.parametrize("far", [[], [0, 5, 6_200_000, 20_000_000, 600_500]], ids=["dense", "sparse"])
def test_bitmap_ladder_equals_sorted_unique(far):
    """Both ladder builders (bitmap for a dense span, sort for a sparse one) give the same ladder."""
    rng = np.random.default_rng(0)
    price = np.concatenate([rng.integers(600_000, 601_000, 5000), far]).astype(np.int64)
    kind = rng.choice(np.array([BOOK, TRADE, CLEAR], dtype=np.int8), price.size)
    a = build_ladder(kind, price)
    b = build_ladder(kind, price, bitmap_max=0)
    live = kind != CLEAR
    assert np.array_equal(a[0], np.unique(price[live])) and np.array_equal(a[0], b[0])
    lv = ladder_lookup(a[0])(price)
    assert np.array_equal(a[0][lv[live]], price[live])
    assert a[1:] == b[1:] == (int(price[live].min()), int(price[live].max()))


@njit
def _replay(kind, side, lv, qty, n):
    book = np.zeros((2, n))
    bests = np.array([-1, n, n, -1, n, -1], dtype=np.int64)
    for e in range(kind.shape[0]):
        apply_market_event(book, bests, kind[e], side[e], lv[e], qty[e])
    return book, bests


def test_clear_with_far_levels_drops_the_whole_side():
    # bids at the touch and far below, asks near and far above; the bid side is cleared and rebuilt
    price = np.array([100, 5, 103, 10_000_000, 0, 98, 99], dtype=np.int64)
    kind = np.array([BOOK, BOOK, BOOK, BOOK, CLEAR, BOOK, BOOK], dtype=np.int8)
    side = np.array([BID, BID, ASK, ASK, BID, BID, BID], dtype=np.int8)
    qty = np.array([1.0, 2.0, 1.0, 3.0, 0.0, 4.0, 0.0])
    ladder = build_ladder(kind, price)[0]
    lv = ladder_lookup(ladder)(price)
    n = ladder.size
    b, bests = _replay(kind, side, lv, qty, n)
    assert ladder[bests[0]] == 98 and ladder[bests[1]] == 103
    assert b[0].sum() == 4.0  # 100 and the far 5 are gone
    assert b[1, np.searchsorted(ladder, 10_000_000)] == 3.0
    # deleting the only bid empties the side: the far level cleared before must not come back
    b2, bests2 = _replay(np.append(kind, BOOK), np.append(side, BID), np.append(lv, np.searchsorted(ladder, 98)),
                         np.append(qty, 0.0), n)
    assert bests2[0] == -1 and b2[0].sum() == 0.0
    assert (new_bests(n) == [-1, n, n, -1, n, -1]).all()


def test_local_view_and_fills_with_far_levels():
    rows = base_book() + [
        book(0, BID, 1, 9.0), book(0, ASK, 5_000_000, 9.0),  # far levels: a 5M-tick price range
        book(20, BID, 100, 0.0),  # best bid deleted: the next bid is the far one at 1
        book(150, BID, 100, 2.0),
        book(250, ASK, 102, 0.0),  # best ask deleted: the next ask is the far one
    ]
    pol = Script(lambda s: Quotes(bid_price=101, bid_qty=1.0) if s.step == 3 else Quotes())
    out = run_backtest(market(rows), pol, cfg(flatten_at_episode_end=False))
    assert [(s.best_bid, s.best_ask) for s in pol.states[:4]] == [(100, 102), (1, 102), (100, 102), (100, 5_000_000)]
    assert out.counters["orders_rejected_price_range"] == 0 and len(out.fills) == 0
