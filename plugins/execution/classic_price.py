"""The ``classic-price`` execution policy: quotes built from predicted mid, spread and volume.

Reads the per-step signals ``pred_mid`` (predicted mid change over the horizon, ticks),
``pred_spread`` (predicted mean spread, ticks) and ``pred_volume`` (predicted ``log(1 + traded
qty)`` over the horizon) from ``state.signals`` — produced by a model pipeline (the LLM teacher,
CMM students or MoE) — and quotes (all in ticks, ``q`` = position)::

    m̂    = mid + alpha * pred_mid
    ŝ    = max(spread_scale * pred_spread, min_spread_ticks)
    skew = skew_ticks_per_unit * q
    bid  = floor(m̂ - ŝ/2 - skew),   ask = ceil(m̂ + ŝ/2 - skew)
    qty  = clip(round_down_to_lot(size_fraction * (exp(pred_volume) - 1)), min_qty, max_qty)

Quotes are post-only (a bid never at or above the local best ask, an ask never at or below the
best bid), and a side whose fill would take ``|position|`` beyond the position limit is not quoted.
A non-finite signal means "no information": ``pred_mid`` -> 0, ``pred_spread`` -> the current
spread, ``pred_volume`` -> ``min_qty``.  A strategy without these signals is a configuration error.

``quote`` and ``compiled()`` run the same numba function
(:func:`cmm_bt_plugins.execution.kernels.classic_price_quote`).  The compiled path reads the three
signals from the engine's signal row by column index: the policy takes the signal table's column
names from ``RunContext.extra["signal_columns"]`` (or the pipeline's ``Signals`` product in
``RunContext.products``) when the run passes them, and otherwise assumes the order of the shipped
model pipelines, ``pred_mid, pred_spread, pred_volume`` and nothing else (a row of another width is
a ``ConfigError`` in the compiled path).
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
from pydantic import Field, model_validator

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes, RunContext
from cmm_bt.errors import ConfigError
from cmm_bt.pipeline import Signals
from cmm_bt_plugins.execution.quoting import CompiledQuoting, QuotingParams, sizing, to_quotes
from cmm_bt_plugins.models.signals import SIGNALS


def signal_columns(context: RunContext | None) -> list[str] | None:
    """The signal table's column names in the order the engine passes them, if the run tells the policy:
    ``context.extra["signal_columns"]``, else the columns of the ``Signals`` product of the model
    pipeline (``context.products``, where the host provides it); None when unknown."""
    if context is None:
        return None
    if "signal_columns" in context.extra:
        return [str(c) for c in context.extra["signal_columns"]]
    if context.products is None:
        return None
    sig = context.products.get(Signals)
    return [] if sig is None else [str(c) for c in sig.frame.columns]


class ClassicPrice(CompiledQuoting, ExecutionPolicy):
    """Quote around the predicted mid with the predicted spread, sized by predicted volume."""

    name: ClassVar[str] = "classic-price"
    kernel: ClassVar[str] = "classic_price_quote"

    class Config(QuotingParams):
        alpha: float = Field(1.0, description="Weight of the predicted mid change in the quote centre: m̂ = mid + alpha * pred_mid.")
        spread_scale: float = Field(1.0, gt=0, description="Multiplier on the predicted spread: quoted width ŝ = spread_scale * pred_spread.")
        min_spread_ticks: float = Field(1.0, gt=0, description="Lower bound on the quoted width ŝ, ticks.")
        skew_ticks_per_unit: float = Field(0.0, ge=0, description="Linear inventory skew: both quotes move down by this many ticks per unit of long position.")
        size_fraction: float = Field(0.05, ge=0, description="Quote this fraction of the predicted traded quantity over the horizon, exp(pred_volume) - 1.")
        min_qty: float | None = Field(None, gt=0, description="Smallest quote size; default: order_qty (this policy's or the engine's).")
        max_qty: float | None = Field(None, gt=0, description="Largest quote size; default: 5 x min_qty.")

        @model_validator(mode="after")
        def _check_range(self) -> "ClassicPrice.Config":
            if self.min_qty is not None and self.max_qty is not None and self.max_qty < self.min_qty:
                raise ValueError("max_qty must be >= min_qty")
            return self

    def __init__(self, config: "ClassicPrice.Config"):
        super().__init__(config)
        self.context: RunContext | None = None
        self._py: "tuple[Callable, np.ndarray] | None" = None

    def fit(self, context: RunContext) -> None:
        """Nothing to estimate; remembers the engine's order size, lot size and position limit (and the
        signal columns, when the run tells them)."""
        self.context = context
        self.reset_compiled()
        self._py = None

    def size_range(self) -> tuple[float, float, float]:
        """``(min_qty, max_qty, position_limit)`` with defaults resolved from the run context."""
        qty, limit = sizing(self.config, self.context)
        lo = self.config.min_qty if self.config.min_qty is not None else qty
        hi = self.config.max_qty if self.config.max_qty is not None else 5.0 * lo
        return lo, max(hi, lo), limit

    def build_params(self, kernels, columns: "list[str] | None" = None) -> np.ndarray:
        """Params of :func:`~cmm_bt_plugins.execution.kernels.classic_price_quote`; the signals at the
        indices of ``columns`` (all three must be there), or at 0, 1, 2 of a row of exactly three."""
        c = self.config
        lo, hi, limit = self.size_range()
        p = kernels.common_params(kernels.CP_SIZE, lo, limit, c.allow_inside_spread)
        p[kernels.CP_ALPHA], p[kernels.CP_SCALE], p[kernels.CP_MIN_SPREAD] = c.alpha, c.spread_scale, c.min_spread_ticks
        p[kernels.CP_SKEW], p[kernels.CP_FRAC], p[kernels.CP_LO], p[kernels.CP_HI] = (
            c.skew_ticks_per_unit, c.size_fraction, lo, hi)
        lot = self.context.instrument.lot_size if self.context is not None else 0.0
        p[kernels.CP_LOT] = lot if lot and lot > 0 else 0.0
        cols = [columns.index(s) for s in SIGNALS] if columns is not None else [0, 1, 2]
        p[kernels.CP_COL_MID], p[kernels.CP_COL_SPREAD], p[kernels.CP_COL_VOL] = cols
        p[kernels.CP_WIDTH] = -1 if columns is not None else len(SIGNALS)
        return p

    def compiled(self):
        """The compiled quoting function and its params; None (the Python path, which raises the
        missing-signals ``ConfigError``) when the run's signal columns are known and lack one of ``SIGNALS``."""
        if self._fast is None:
            cols = signal_columns(self.context)
            if cols is not None and any(s not in cols for s in SIGNALS):
                return None
            from cmm_bt_plugins.execution import kernels

            self._fast = (kernels.classic_price_quote, self.build_params(kernels, cols))
        return self._fast

    def _python_kernel(self) -> "tuple[Callable, np.ndarray]":
        """The same function, for a row holding exactly ``SIGNALS`` in that order (the Python path)."""
        if self._py is None:
            from cmm_bt_plugins.execution import kernels

            self._py = (kernels.classic_price_quote, self.build_params(kernels))
        return self._py

    def quote_size(self, pred_volume: float) -> float:
        """Quote size from the predicted log volume (see the module doc)."""
        from cmm_bt_plugins.execution import kernels

        p = self._python_kernel()[1]
        return float(kernels.classic_size(float(pred_volume), p[kernels.CP_FRAC], p[kernels.CP_LO], p[kernels.CP_HI],
                                          p[kernels.CP_LOT]))

    def quote(self, state: DecisionState) -> Quotes:
        sig = state.signals
        missing = [s for s in SIGNALS if s not in sig]
        if missing:
            raise ConfigError(
                f"classic-price needs the signals {', '.join(SIGNALS)} but {', '.join(missing)} are missing: "
                "add a model stage (e.g. teacher: {name: hf-causal-lm}) to the strategy",
                key="execution",
            )
        fn, params = self._py or self._python_kernel()
        row = np.array((sig["pred_mid"], sig["pred_spread"], sig["pred_volume"]), np.float64)
        return to_quotes(*fn(state.ts, state.best_bid, state.best_ask, state.bid_qty, state.ask_qty, state.position,
                             state.episode_progress, row, params))


__all__ = ["ClassicPrice", "SIGNALS"]
