"""Synthetic markets with known σ, A and k for the classic market makers' estimators."""

from __future__ import annotations

import numpy as np
import pytest

from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events, sort_events

STEP_NS = 100_000_000  # book moves every 100 ms


def synthetic_market(
    *,
    seconds: float = 2000.0,
    p_move: float = 0.5,
    order_rate: float = 2.0,
    k: float = 0.4,
    seed: int = 0,
    start_ns: int = 1_700_000_000_000_000_000,
) -> MarketData:
    """A one-level book with spread 1 whose mid moves ±1 tick with probability ``p_move`` every 100 ms
    (σ = sqrt(p_move / 0.1) ticks/√s), and market orders arriving at ``order_rate`` per second whose
    depth from the mid is ``0.5 + floor(Exp(k))`` ticks, so λ(δ) = order_rate·e^{k/2}·e^{-kδ}."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 1e9 // STEP_NS)
    moves = rng.choice([-1, 0, 1], size=n, p=[p_move / 2, 1 - p_move, p_move / 2])
    moves[0] = 0
    bid0 = 100_000
    bids = bid0 + np.cumsum(moves)
    ts, ev, side, price, qty = [], [], [], [], []

    def add(t, e, s, p, q):
        ts.append(t), ev.append(e), side.append(s), price.append(p), qty.append(q)

    add(start_ns, BOOK, BID, bids[0], 5.0)
    add(start_ns, BOOK, ASK, bids[0] + 1, 5.0)
    for i in np.flatnonzero(moves):
        t, b, old = start_ns + i * STEP_NS, bids[i], bids[i - 1]
        if moves[i] > 0:  # new levels first, then delete the old ones
            add(t, BOOK, ASK, b + 1, 5.0), add(t, BOOK, ASK, old + 1, 0.0)
            add(t, BOOK, BID, b, 5.0), add(t, BOOK, BID, old, 0.0)
        else:
            add(t, BOOK, BID, b, 5.0), add(t, BOOK, BID, old, 0.0)
            add(t, BOOK, ASK, b + 1, 5.0), add(t, BOOK, ASK, old + 1, 0.0)
    n_orders = rng.poisson(order_rate * seconds)
    t_orders = np.sort(rng.uniform(0, n * STEP_NS, n_orders).astype(np.int64))
    t_orders = t_orders - t_orders % STEP_NS + STEP_NS // 2  # strictly between book updates
    depth = 0.5 + np.floor(rng.exponential(1.0 / k, n_orders))
    aggr = rng.choice([BID, ASK], n_orders)
    for t, d, s in zip(t_orders, depth, aggr):
        mid = bids[min(int(t // STEP_NS), n - 1)] + 0.5
        add(start_ns + int(t), TRADE, s, int(round(mid + d if s == BID else mid - d)), 1.0)
    events = sort_events(
        make_events(
            exch_ts=np.array(ts, np.int64),
            ev=np.array(ev),
            side=np.array(side),
            price=np.array(price, np.int64),
            qty=np.array(qty),
        )
    )
    end = start_ns + n * STEP_NS
    return MarketData(events, Instrument("SYN", tick_size=0.1), sessions=[(start_ns, end)])


@pytest.fixture(scope="session")
def market() -> MarketData:
    return synthetic_market()


@pytest.fixture(scope="session")
def make_market():
    """The :func:`synthetic_market` factory."""
    return synthetic_market
