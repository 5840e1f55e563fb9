"""Hand-built event tables and scripted policies for the engine tests."""

from __future__ import annotations

from typing import Callable

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events
from cmm_bt.engine.config import EngineConfig

T0 = 1_000_000_000_000_000  # ns
MS = 1_000_000
INSTR = Instrument("TST", tick_size=0.5, multiplier=10.0, lot_size=1.0)  # tick_value = 5


def ms(x: float) -> int:
    return T0 + int(round(x * MS))


def book(t_ms, side, price, qty, local_ms=None):
    return (t_ms, BOOK, side, price, qty, local_ms)


def trade(t_ms, aggressor, price, qty, local_ms=None):
    return (t_ms, TRADE, aggressor, price, qty, local_ms)


def market(rows, end_ms: float = 1000.0, sessions=None) -> MarketData:
    ts = [ms(r[0]) for r in rows]
    lts = [ms(r[5]) if r[5] is not None else ms(r[0]) for r in rows]
    ev = make_events(exch_ts=ts, local_ts=lts, ev=[r[1] for r in rows], side=[r[2] for r in rows],
                     price=[r[3] for r in rows], qty=[r[4] for r in rows])
    if sessions is None:
        sessions = [(T0, ms(end_ms))]
    return MarketData(ev, INSTR, sessions=sessions)


def base_book(bid=100, ask=102, bq=5.0, aq=5.0):
    return [book(0, BID, bid, bq), book(0, ASK, ask, aq)]


def cfg(**kw) -> EngineConfig:
    base = dict(entry_latency_us=1000, response_latency_us=1000, feed_latency_us=0, maker_fee=0.0, taker_fee=0.0)
    base.update(kw)
    return EngineConfig(**base)


class Script(ExecutionPolicy):
    """Quotes whatever ``fn(state)`` returns; remembers every state it saw."""

    name = "script"

    def __init__(self, fn: Callable[[DecisionState], Quotes]):
        super().__init__(self.Config())
        self.fn = fn
        self.states: list[DecisionState] = []

    def quote(self, state: DecisionState) -> Quotes:
        self.states.append(state)
        return self.fn(state)


def first_step(q: Quotes) -> Callable[[DecisionState], Quotes]:
    """Quote ``q`` at step 0 and keep it (unchanged quotes keep the order)."""
    return lambda s: q


def once(q: Quotes) -> Callable[[DecisionState], Quotes]:
    """Quote ``q`` at step 0, nothing afterwards (the order is cancelled at step 1)."""
    return lambda s: q if s.step == 0 else Quotes()


__all__ = ["ASK", "BID", "MS", "T0", "INSTR", "Script", "base_book", "book", "cfg", "market", "ms", "trade",
           "first_step", "once"]
