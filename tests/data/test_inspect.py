from __future__ import annotations

import numpy as np
from rich.console import Console

from cmm_bt.data.inspect import inspect_market, render_inspection
from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, TRADE, Instrument, MarketData, make_events

S = 1_000_000_000


def _market() -> MarketData:
    rows = [  # ts, ev, side, price, qty
        (0, CLEAR, BID, 0, 0), (0, CLEAR, ASK, 0, 0), (0, BOOK, BID, 100, 5), (0, BOOK, ASK, 102, 7),
        (1 * S, BOOK, ASK, 101, 1),  # spread 1
        (1 * S, TRADE, 1, 101, 1),
        (5 * S, BOOK, ASK, 101, 0),  # gap of 4 s, spread back to 2
        (6 * S, BOOK, BID, 101, 2), (6 * S, BOOK, ASK, 102, 3),  # intermediate state only
    ]
    a = np.array(rows, dtype=np.float64)
    ev = make_events(exch_ts=a[:, 0].astype(np.int64), ev=a[:, 1], side=a[:, 2], price=a[:, 3], qty=a[:, 4])
    return MarketData(ev, Instrument("X", 0.5), [(0, 6 * S)], {"dropped_crossed_rows": 3, "locked_rows": 2})


def test_stats_are_computed_from_the_replayed_book():
    st = inspect_market(_market())
    assert st["rows"] == {"book": 6, "trade": 1, "clear": 2}
    assert st["span_s"] == 6.0
    # states at the end of each timestamp: spreads 2, 1, 2, 1
    assert st["book_states"] == 4
    assert st["spread_ticks"]["mean"] == 1.5 and st["spread_ticks"]["median"] == 1.5
    assert st["gaps"] == 1 and st["largest_gap_s"] == 4.0
    assert st["dropped_crossed_rows"] == 3 and st["locked_rows"] == 2
    assert st["buy_fraction"] == 1.0 and st["trade_volume"] == 1.0
    assert len(st["sessions"]) == 1


def test_render_prints_tables():
    console = Console(record=True, width=120)
    render_inspection(inspect_market(_market()), console)
    text = console.export_text()
    assert "spread_ticks" in text and "Sessions" in text and "gaps > 1 s" in text
