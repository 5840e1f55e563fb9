"""Avellaneda–Stoikov (2008) market maker with σ and k estimated from the training split."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from cmm_bt.components import RunContext
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution.estimation import EstimatedPolicy, EstimationParams
from cmm_bt_plugins.execution.quoting import CompiledQuoting, QuotingParams, sizing


class AvellanedaStoikov(CompiledQuoting, EstimatedPolicy):
    """Reservation price ``r = s - q γ σ² (T-t)`` and total spread ``γσ²(T-t) + (2/γ) ln(1 + γ/k)``.

    Units: ticks and seconds (σ in ticks/√s, k per tick, γ per tick); ``q`` is the position in
    order lots (``position / order_qty``).  Unless ``gamma`` is given, γ follows from the
    scale-free ``risk_aversion`` γ̃: ``γ = γ̃ / (k σ² T)`` with ``T`` the horizon, i.e. at the start of
    the horizon one lot of inventory moves the reservation price by ``γ̃ / k`` ticks — γ̃ times the
    decay length of the fill intensity, whatever the instrument's tick, price or volatility.  Quotes are ``r ∓ spread/2``, rounded outward and
    clamped post-only.  ``quote`` and ``compiled()`` run
    :func:`cmm_bt_plugins.execution.kernels.avellaneda_stoikov_quote` (σ², ``(2/γ)·ln(1+γ/k)`` in its params).
    """

    name: ClassVar[str] = "avellaneda-stoikov"
    kernel: ClassVar[str] = "avellaneda_stoikov_quote"

    class Config(QuotingParams, EstimationParams):
        risk_aversion: float = Field(
            0.5, gt=0, description="Scale-free risk aversion γ̃: one lot of inventory shifts the quotes by γ̃/k ticks at the "
            "start of the horizon (γ = γ̃ / (k σ² T)); used unless `gamma` is given.")
        gamma: float | None = Field(None, gt=0, description="Absolute risk aversion γ (per tick per lot); overrides `risk_aversion`.")
        sigma: float | None = Field(
            None, gt=0, description="Mid volatility σ, ticks per √second; default: estimated from the training split."
        )
        k: float | None = Field(
            None, gt=0, description="Decay k of the arrival intensity λ(δ)=A·exp(-kδ), per tick; default: estimated."
        )
        horizon: Literal["episode", "fixed"] = Field(
            "episode",
            description="'episode': T-t = (1 - episode_progress) * episode length; "
            "'fixed': a rolling horizon, T-t = horizon_s at every step.",
        )
        horizon_s: float | None = Field(
            None,
            gt=0,
            description="Seconds: the fixed horizon ('fixed', required) or the episode length ('episode'; default: "
            "context.extra['episode_length_s'], else the median training-session length).",
        )

    def __init__(self, config: "AvellanedaStoikov.Config"):
        super().__init__(config)
        if config.horizon == "fixed" and config.horizon_s is None:
            raise ConfigError("horizon 'fixed' needs horizon_s", key="params.horizon_s")
        self.horizon_s: float | None = config.horizon_s

    def fit(self, context: RunContext) -> None:
        """Estimate σ and k from ``context.train`` where the config leaves them unset; the episode length."""
        super().fit(context)
        c = self.config
        if c.horizon == "episode" and c.horizon_s is None:
            self.horizon_s = _episode_length_s(context)
        self.reset_compiled()

    def _gamma_from_risk_aversion(self, risk_aversion: float) -> float | None:
        """``γ = γ̃ / (k σ² T)``."""
        if self.sigma is None or self.k is None or self.horizon_s is None:
            return None
        return risk_aversion / (self.k * self.sigma**2 * self.horizon_s)

    @property
    def fitted(self) -> dict[str, float | None]:
        """The parameters in use (estimated or given)."""
        return {"sigma": self.sigma, "k": self.k, "A": self.A, "horizon_s": self.horizon_s, "gamma": self.gamma}

    def build_params(self, kernels) -> np.ndarray:
        c = self.config
        if self.sigma is None or self.k is None:
            raise ConfigError("sigma and k are unknown: call fit(context) first or set them", key="params")
        if self.horizon_s is None:
            raise ConfigError("episode length unknown: call fit(context) first or set horizon_s", key="params.horizon_s")
        qty, limit = sizing(c, self.context)
        p = kernels.common_params(8, qty, limit, c.allow_inside_spread)
        g = self.gamma
        p[kernels.AS_GAMMA], p[kernels.AS_VAR], p[kernels.AS_HORIZON] = g, self.sigma**2, self.horizon_s
        p[kernels.AS_FIXED] = 1.0 if c.horizon == "fixed" else 0.0
        p[kernels.AS_LOG] = (2.0 / g) * math.log1p(g / self.k)
        return p


def _episode_length_s(context: RunContext) -> float:
    """Episode length: ``context.extra['episode_length_s']``, else the median training-session length."""
    if "episode_length_s" in context.extra:
        return float(context.extra["episode_length_s"])
    train = context.train
    if train is not None and len(train.events):
        spans = [e - s for s, e in train.sessions if e > s] or [train.end_ns - train.start_ns]
        if spans and np.median(spans) > 0:
            return float(np.median(spans)) / 1e9
    raise ConfigError("cannot tell the episode length: set horizon_s", key="params.horizon_s")
