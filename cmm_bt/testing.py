"""Test helpers for plugin authors (loaded by pytest through the ``pytest11`` entry point).

Fixtures: ``tiny_market`` (a small two-sided book with trades, as :class:`MarketData`) and
``cmm_bt_session`` (a plugin session with every installed plugin).  Context manager:
:func:`registered_plugin` registers a plugin object for the duration of a block.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pytest

from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events

MS = 1_000_000


def tiny_market(n_steps: int = 200, seed: int = 0) -> MarketData:
    """A small random-walk book (one level per side, 1-tick spread) with a trade every step."""
    rng = np.random.default_rng(seed)
    mid = 1000 + np.cumsum(rng.choice([-1, 0, 0, 1], size=n_steps))
    rows = []
    for i, m in enumerate(mid):
        t = (i + 1) * 50 * MS
        rows += [(t, BOOK, BID, m, 5.0), (t, BOOK, ASK, m + 1, 5.0)]
        if i:
            prev = mid[i - 1]
            if prev != m:  # levels that left the touch
                rows += [(t, BOOK, BID, prev, 0.0) if prev > m else (t, BOOK, ASK, prev + 1, 0.0)]
        side = BID if rng.random() < 0.5 else ASK
        rows.append((t + MS, TRADE, side, m + 1 if side == BID else m, float(rng.integers(1, 4))))
    ts, ev, sd, px, q = map(np.array, zip(*rows))
    events = make_events(exch_ts=ts, local_ts=ts + MS // 2, ev=ev, side=sd, price=px, qty=q)
    return MarketData(events, Instrument("TINY", tick_size=0.01), [(int(ts[0]), int(ts[-1]) + 1)])


@contextlib.contextmanager
def registered_plugin(pm, plugin: object, name: str) -> Iterator[object]:
    """Register ``plugin`` on ``pm`` under ``name``; always unregistered afterwards."""
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


@pytest.fixture(name="tiny_market")
def _tiny_market_fixture() -> MarketData:
    return tiny_market()


@pytest.fixture
def cmm_bt_session():
    from rich.console import Console

    from cmm_bt.api import Session

    return Session.start(console=Console(record=True, width=120))
