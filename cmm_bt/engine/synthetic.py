"""A synthetic, seeded event stream for engine tests and the replay benchmark (not market-realistic)."""

from __future__ import annotations

import numpy as np

from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events


def synthetic_market(n_events: int = 10_000, *, seed: int = 0, levels: int = 5, start_ns: int = 1_700_000_000 * 10**9,
                     mean_gap_us: float = 1000.0, feed_latency_us: float = 200.0, base_price: int = 100_000) -> MarketData:
    """A random-walk L2 book: level refreshes around a drifting mid, plus trades at the touch.

    The initial ``2 * levels`` BOOK events build a two-sided book; afterwards each event is a level
    update (80 %) or a trade at the best price (20 %).  Every time the mid moves, the levels of the
    old touch that would cross are deleted before the new ones are set.
    """
    rng = np.random.default_rng(seed)
    ts = start_ns + np.cumsum(rng.exponential(mean_gap_us * 1000.0, n_events)).astype(np.int64)
    kind = np.empty(n_events, np.int8)
    side = np.empty(n_events, np.int8)
    price = np.empty(n_events, np.int64)
    qty = np.empty(n_events, np.float64)
    bid = base_price
    ask = base_price + 1
    i = 0
    for j in range(levels):
        for sd, p in ((BID, bid - j), (ASK, ask + j)):
            if i < n_events:
                kind[i], side[i], price[i], qty[i] = BOOK, sd, p, float(rng.integers(1, 20))
                i += 1
    u = rng.random(n_events)
    sd_draw = rng.random(n_events) < 0.5
    depth = rng.integers(0, levels, n_events)
    sizes = rng.integers(0, 25, n_events).astype(np.float64)
    tq = rng.integers(1, 6, n_events).astype(np.float64)
    move = rng.random(n_events)
    while i < n_events:
        if u[i] < 0.2:  # trade at the touch
            if sd_draw[i]:
                kind[i], side[i], price[i], qty[i] = TRADE, BID, ask, tq[i]
            else:
                kind[i], side[i], price[i], qty[i] = TRADE, ASK, bid, tq[i]
        elif u[i] < 0.25 and i + 1 < n_events:  # mid moves by one tick: old touch level emptied
            if move[i] < 0.5:
                kind[i], side[i], price[i], qty[i] = BOOK, ASK, ask, 0.0
                ask += 1
                bid += 1
                i += 1
                kind[i], side[i], price[i], qty[i] = BOOK, BID, bid, float(max(sizes[i], 1.0))
            else:
                kind[i], side[i], price[i], qty[i] = BOOK, BID, bid, 0.0
                bid -= 1
                ask -= 1
                i += 1
                kind[i], side[i], price[i], qty[i] = BOOK, ASK, ask, float(max(sizes[i], 1.0))
        else:
            if sd_draw[i]:
                kind[i], side[i], price[i] = BOOK, BID, bid - depth[i]
            else:
                kind[i], side[i], price[i] = BOOK, ASK, ask + depth[i]
            q = sizes[i]
            if depth[i] == 0 and q == 0:
                q = 1.0  # keep the touch populated
            qty[i] = q
        i += 1
    lts = ts + int(feed_latency_us * 1000)
    events = make_events(exch_ts=ts, local_ts=lts, ev=kind, side=side, price=price, qty=qty)
    return MarketData(events, Instrument("SYN", tick_size=0.01, multiplier=1.0, lot_size=1.0))
