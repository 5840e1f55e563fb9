"""Fixed-spread market maker: mid ± a constant half-spread, with linear inventory skew."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from cmm_bt.components import ExecutionPolicy, RunContext
from cmm_bt_plugins.execution.quoting import CompiledQuoting, QuotingParams, sizing


class FixedSpread(CompiledQuoting, ExecutionPolicy):
    """Quotes ``mid - half_spread - skew*q`` / ``mid + half_spread - skew*q`` (ticks, rounded outward).

    ``q`` is the position in contracts / base units.  A long position lowers both quotes (sell more
    eagerly, buy less eagerly); a side whose fill would breach the position limit is not quoted.
    ``quote`` and ``compiled()`` run :func:`cmm_bt_plugins.execution.kernels.fixed_spread_quote`.
    """

    name: ClassVar[str] = "fixed-spread"
    kernel: ClassVar[str] = "fixed_spread_quote"

    class Config(QuotingParams):
        half_spread_ticks: float = Field(1.0, gt=0, description="Distance of each quote from the mid, ticks.")
        skew_ticks_per_unit: float = Field(
            0.0, ge=0, description="Both quotes move down by this many ticks per unit of long inventory (up when short)."
        )

    def __init__(self, config: "FixedSpread.Config"):
        super().__init__(config)
        self.context: RunContext | None = None

    def fit(self, context: RunContext) -> None:
        """Nothing to estimate; remembers the engine's order size and position limit."""
        self.context = context
        self.reset_compiled()

    def build_params(self, kernels) -> np.ndarray:
        c = self.config
        qty, limit = sizing(c, self.context)
        p = kernels.common_params(5, qty, limit, c.allow_inside_spread)
        p[kernels.FS_HALF], p[kernels.FS_SKEW] = c.half_spread_ticks, c.skew_ticks_per_unit
        return p
