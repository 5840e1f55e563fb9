"""Actions -> quotes: one function for the environment (Python) and the compiled policy (numba).

:func:`discrete_quotes` and :func:`continuous_quotes` are plain Python on ints and floats; the compiled
policy (:mod:`cmm_bt_plugins.rl.forward`) calls the very same source compiled by numba
(:data:`discrete_quotes_nb`, :data:`continuous_quotes_nb`), so training, evaluation and the
backtest turn an action into the same orders (``tests/plugins/rl/test_actions.py`` checks both forms).

Discrete actions are rows of an :class:`ActionMap` table: ``(bid_offset, ask_offset, flags)`` with
flags ``HAS_BID | HAS_ASK | FLATTEN``.  Offsets are ticks from the same-side best price of the local
book (0 joins the touch; a negative offset improves it, clamped to stay passive: bid <= best_ask - 1,
ask >= best_bid + 1).  A side whose fill of ``qty`` would take the locally known position beyond the
limit is not quoted.  ``FLATTEN`` sends one order of ``|position|`` at the opposite touch (it takes
liquidity when ``engine.post_only`` is false) and nothing on the other side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from cmm_bt.components import NO_PRICE

HAS_BID, HAS_ASK, FLATTEN = 1, 2, 4
EPS = 1e-9


def discrete_quotes(bid_off, ask_off, flags, best_bid, best_ask, position, qty, limit):
    """``(bid_px, bid_qty, ask_px, ask_qty)`` of one grid action (``NO_PRICE``: no order)."""
    if flags & FLATTEN:
        if position > EPS:
            return NO_PRICE, 0.0, best_bid, position
        if position < -EPS:
            return best_ask, -position, NO_PRICE, 0.0
        return NO_PRICE, 0.0, NO_PRICE, 0.0
    bid_px, bid_q, ask_px, ask_q = NO_PRICE, 0.0, NO_PRICE, 0.0
    if flags & HAS_BID and position + qty <= limit + EPS:
        bid_px, bid_q = min(best_bid - bid_off, best_ask - 1), qty
    if flags & HAS_ASK and position - qty >= -limit - EPS:
        ask_px, ask_q = max(best_ask + ask_off, best_bid + 1), qty
    return bid_px, bid_q, ask_px, ask_q


def continuous_offset(a, lo, hi):
    """Action component ``a`` (clipped to [-1, 1]) as an integer offset in ``[lo, hi]`` ticks (nearest)."""
    a = min(max(a, -1.0), 1.0)
    return int(math.floor(lo + (a + 1.0) * 0.5 * (hi - lo) + 0.5))


def continuous_quotes(a_bid, a_ask, lo, hi, best_bid, best_ask, position, qty, limit):
    """``(bid_px, bid_qty, ask_px, ask_qty)`` of a continuous action ``(a_bid, a_ask)`` in [-1, 1]^2."""
    return discrete_quotes(continuous_offset(a_bid, lo, hi), continuous_offset(a_ask, lo, hi), HAS_BID | HAS_ASK,
                           best_bid, best_ask, position, qty, limit)


continuous_offset_nb = njit(cache=True)(continuous_offset)
discrete_quotes_nb = njit(cache=True)(discrete_quotes)


@njit(cache=True)
def continuous_quotes_nb(a_bid, a_ask, lo, hi, best_bid, best_ask, position, qty, limit):
    return discrete_quotes_nb(continuous_offset_nb(a_bid, lo, hi), continuous_offset_nb(a_ask, lo, hi), HAS_BID | HAS_ASK,
                              best_bid, best_ask, position, qty, limit)


@dataclass(frozen=True)
class ActionMap:
    """How actions become quotes (saved with the trained policy).

    :ivar kind: ``discrete`` or ``continuous``.
    :ivar table: discrete: int64 ``[n, 3]`` rows ``(bid_offset, ask_offset, flags)``; continuous: empty.
    :ivar lo, hi: continuous: the offsets of actions -1 and +1 (ticks).
    :ivar qty, limit: order size and inventory limit.
    """

    kind: str
    table: np.ndarray
    lo: int
    hi: int
    qty: float
    limit: float

    @classmethod
    def from_params(cls, env, qty: float, limit: float) -> "ActionMap":
        rows = []
        for entry in env.grid:
            if entry == "flatten":
                rows.append((0, 0, FLATTEN))
            else:
                b, a = entry
                rows.append((b or 0, a or 0, (HAS_BID if b is not None else 0) | (HAS_ASK if a is not None else 0)))
        table = np.array(rows, dtype=np.int64) if env.actions == "discrete" else np.zeros((0, 3), np.int64)
        return cls(env.actions, table, int(env.min_offset_ticks), int(env.max_offset_ticks), float(qty), float(limit))

    @property
    def n(self) -> int:
        return int(self.table.shape[0])

    @property
    def has_flatten(self) -> bool:
        return bool(self.n and np.any(self.table[:, 2] & FLATTEN))

    def labels(self) -> list[str]:
        if self.kind != "discrete":
            return [f"continuous offsets {self.lo}..{self.hi}"]
        out = []
        for b, a, f in self.table.tolist():
            if f & FLATTEN:
                out.append("flatten")
            else:
                out.append(f"[{b if f & HAS_BID else 'none'}, {a if f & HAS_ASK else 'none'}]")
        return out

    def to_json(self) -> dict:
        return {"kind": self.kind, "table": self.table.tolist(), "lo": self.lo, "hi": self.hi, "qty": self.qty, "limit": self.limit}

    @classmethod
    def from_json(cls, d: dict) -> "ActionMap":
        return cls(d["kind"], np.array(d["table"], dtype=np.int64).reshape(-1, 3), int(d["lo"]), int(d["hi"]), float(d["qty"]),
                   float(d["limit"]))

    def python_quoter(self):
        """``f(action, best_bid, best_ask, position) -> (bid_px, bid_qty, ask_px, ask_qty)`` in plain Python."""
        qty, limit = self.qty, self.limit
        if self.kind == "discrete":
            rows = [tuple(r) for r in self.table.tolist()]

            def quote(action, bb, ba, pos):
                b, a, f = rows[int(action)]
                return discrete_quotes(b, a, f, bb, ba, pos, qty, limit)
        else:
            lo, hi = self.lo, self.hi

            def quote(action, bb, ba, pos):
                return continuous_quotes(float(action[0]), float(action[1]), lo, hi, bb, ba, pos, qty, limit)
        return quote


__all__ = ["ActionMap", "FLATTEN", "HAS_ASK", "HAS_BID", "continuous_quotes", "continuous_quotes_nb", "discrete_quotes",
           "discrete_quotes_nb"]
