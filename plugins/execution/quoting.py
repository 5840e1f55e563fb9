"""Options and sizing shared by the classic market makers.

The quoting arithmetic itself (tick rounding, post-only clamps, position limits) is in
:mod:`cmm_bt_plugins.execution.kernels`, compiled once with numba and used by both the Python
``quote`` and the ``compiled()`` path of every policy.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
from pydantic import Field

from cmm_bt.components import NO_PRICE, DecisionState, Params, Quotes, RunContext
from cmm_bt.errors import ConfigError

#: The (empty, read-only) signal row the Python path hands to quoting functions that read no signals.
NO_SIGNALS = np.empty(0, np.float64)
NO_SIGNALS.flags.writeable = False


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


def to_quotes(bid_price: int, bid_qty: float, ask_price: int, ask_qty: float) -> Quotes:
    """A quoting function's result as :class:`Quotes` (``NO_PRICE`` -> None)."""
    return Quotes(None if bid_price == NO_PRICE else int(bid_price), float(bid_qty),
                  None if ask_price == NO_PRICE else int(ask_price), float(ask_qty))


class CompiledQuoting:
    """Mixin of the classic market makers: ``quote`` and ``compiled()`` call one compiled function.

    A subclass names its function in :mod:`cmm_bt_plugins.execution.kernels` (``kernel``) and builds
    the float64 params array (``build_params(kernels)``, after ``fit``); the Python path calls that
    same numba function with the same array, so both paths give bit-identical quotes.  ``fit`` must
    call :meth:`reset_compiled` (the params depend on the fit).
    """

    kernel: ClassVar[str] = ""
    _fast: "tuple[Callable, np.ndarray] | None" = None

    def build_params(self, kernels) -> np.ndarray:
        raise NotImplementedError

    def reset_compiled(self) -> None:
        self._fast = None

    def compiled(self) -> "tuple[Callable, np.ndarray]":
        """``(fn, params)``: the numba quoting function and its params (built on first use, after ``fit``)."""
        if self._fast is None:
            from cmm_bt_plugins.execution import kernels  # numba: not at plugin registration

            self._fast = (getattr(kernels, self.kernel), self.build_params(kernels))
        return self._fast

    def quote(self, state: DecisionState) -> Quotes:
        fn, params = self._fast or self.compiled()
        return to_quotes(*fn(state.ts, state.best_bid, state.best_ask, state.bid_qty, state.ask_qty, state.position,
                             state.episode_progress, NO_SIGNALS, params))
