"""Helpers shared by the classic market makers: tick rounding, post-only clamps, position limits."""

from __future__ import annotations

import math

from pydantic import Field

from cmm_bt.components import DecisionState, Params, Quotes, RunContext
from cmm_bt.errors import ConfigError

_EPS = 1e-9


class QuotingParams(Params):
    """Options every classic market maker shares."""

    order_qty: float | None = Field(
        None, gt=0, description="Quantity of each quote; default: the engine's order_qty."
    )
    position_limit: float | None = Field(
        None, gt=0, description="Hard |position| limit; default: the engine's position_limit."
    )
    allow_inside_spread: bool = Field(
        True,
        description="Allow quotes that improve the touch (bid up to best_ask-1, ask down to best_bid+1); "
        "False keeps them at or behind the touch (bid <= best_bid, ask >= best_ask).",
    )


def sizing(params: QuotingParams, context: RunContext | None) -> tuple[float, float]:
    """``(order_qty, position_limit)`` from the params, else from the run context."""
    qty = params.order_qty if params.order_qty is not None else (context.order_qty if context else None)
    lim = params.position_limit if params.position_limit is not None else (context.position_limit if context else None)
    if qty is None or lim is None:
        raise ConfigError("order_qty and position_limit are unknown: call fit(context) first or set them", key="params")
    return float(qty), float(lim)


def bid_ticks(price: float, state: DecisionState, *, allow_inside_spread: bool = True) -> int:
    """Round a bid down to a tick and clamp it post-only (never at or above the local best ask)."""
    b = min(math.floor(price + _EPS), state.best_ask - 1)
    return int(b if allow_inside_spread else min(b, state.best_bid))


def ask_ticks(price: float, state: DecisionState, *, allow_inside_spread: bool = True) -> int:
    """Round an ask up to a tick and clamp it post-only (never at or below the local best bid)."""
    a = max(math.ceil(price - _EPS), state.best_bid + 1)
    return int(a if allow_inside_spread else max(a, state.best_ask))


def make_quotes(
    bid: float | None, ask: float | None, state: DecisionState, qty: float, limit: float, *, allow_inside_spread: bool
) -> Quotes:
    """Quotes at ``bid`` / ``ask`` (float ticks; None or non-finite = not quoted), rounded outward and
    clamped post-only, dropping a side whose fill would take |position| beyond ``limit``."""
    pos = state.position
    want_bid = bid is not None and math.isfinite(bid) and pos + qty <= limit + _EPS
    want_ask = ask is not None and math.isfinite(ask) and pos - qty >= -limit - _EPS
    return Quotes(
        bid_price=bid_ticks(bid, state, allow_inside_spread=allow_inside_spread) if want_bid else None,
        bid_qty=qty if want_bid else 0.0,
        ask_price=ask_ticks(ask, state, allow_inside_spread=allow_inside_spread) if want_ask else None,
        ask_qty=qty if want_ask else 0.0,
    )
