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
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, model_validator

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes, RunContext
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution.quoting import QuotingParams, make_quotes, sizing

SIGNALS: tuple[str, ...] = ("pred_mid", "pred_spread", "pred_volume")


class ClassicPrice(ExecutionPolicy):
    """Quote around the predicted mid with the predicted spread, sized by predicted volume."""

    name: ClassVar[str] = "classic-price"

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

    def fit(self, context: RunContext) -> None:
        """Nothing to estimate; remembers the engine's order size, lot size and position limit."""
        self.context = context

    def size_range(self) -> tuple[float, float, float]:
        """``(min_qty, max_qty, position_limit)`` with defaults resolved from the run context."""
        qty, limit = sizing(self.config, self.context)
        lo = self.config.min_qty if self.config.min_qty is not None else qty
        hi = self.config.max_qty if self.config.max_qty is not None else 5.0 * lo
        return lo, max(hi, lo), limit

    def quote_size(self, pred_volume: float) -> float:
        """Quote size from the predicted log volume (see the module doc)."""
        lo, hi, _ = self.size_range()
        if not math.isfinite(pred_volume):
            return lo
        raw = self.config.size_fraction * math.expm1(min(max(pred_volume, 0.0), 50.0))
        lot = self.context.instrument.lot_size if self.context is not None else 0.0
        if lot and lot > 0:
            raw = math.floor(raw / lot + 1e-9) * lot
        return float(min(max(raw, lo), hi))

    def quote(self, state: DecisionState) -> Quotes:
        sig = state.signals
        missing = [s for s in SIGNALS if s not in sig]
        if missing:
            raise ConfigError(
                f"classic-price needs the signals {', '.join(SIGNALS)} but {', '.join(missing)} are missing: "
                "add a model stage (e.g. teacher: {name: hf-causal-lm}) to the strategy",
                key="execution",
            )
        c = self.config
        p_mid, p_spread, p_vol = (float(sig[s]) for s in SIGNALS)
        if not math.isfinite(p_mid):
            p_mid = 0.0
        if not math.isfinite(p_spread):
            p_spread = float(state.spread)
        centre = state.mid + c.alpha * p_mid - c.skew_ticks_per_unit * state.position
        half = 0.5 * max(c.spread_scale * p_spread, c.min_spread_ticks)
        qty = self.quote_size(p_vol)
        _, _, limit = self.size_range()
        return make_quotes(centre - half, centre + half, state, qty, limit, allow_inside_spread=c.allow_inside_spread)


__all__ = ["ClassicPrice", "SIGNALS"]
