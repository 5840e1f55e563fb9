"""Guéant–Lehalle–Fernandez-Tapia market maker (asymptotic closed-form approximation).

Formulas (4.6)-(4.7) of Guéant, "Optimal market making" (arXiv:1605.01862), written as in the
hftbacktest tutorial "GLFT Market Making Model and Grid Trading"::

    c1 = 1/(ξΔ) · ln(1 + ξΔ/k)
    c2 = sqrt( γ / (2AΔk) · (1 + ξΔ/k)^(k/(ξΔ) + 1) )
    δ_bid = c1 + Δ/2·σ·c2 + q·σ·c2,    δ_ask = c1 + Δ/2·σ·c2 − q·σ·c2
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field

from cmm_bt.components import RunContext
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution.estimation import EstimatedPolicy, EstimationParams
from cmm_bt_plugins.execution.quoting import CompiledQuoting, QuotingParams, sizing


def glft_coefficients(gamma: float, xi: float, delta: float, A: float, k: float) -> tuple[float, float]:
    """``(c1, c2)`` of the GLFT approximation (c2 without the σ factor)."""
    xd = xi * delta
    c1 = math.log1p(xd / k) / xd
    c2 = math.sqrt(gamma / (2.0 * A * delta * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    return c1, c2


def gamma_for_skew(skew: float, sigma: float, xi: float | None, delta: float, A: float, k: float) -> float:
    """The γ (ξ = γ unless given) whose GLFT skew ``σ·c2`` equals ``skew`` ticks per lot (bisection on log γ;
    the skew grows with γ)."""
    lo, hi = math.log(1e-12), math.log(1e6)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        g = math.exp(mid)
        if sigma * glft_coefficients(g, xi if xi is not None else g, delta, A, k)[1] < skew:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


class GLFT(CompiledQuoting, EstimatedPolicy):
    """Quotes at ``mid - (half_spread + skew·q)`` and ``mid + (half_spread - skew·q)`` where
    ``half_spread = c1 + Δ/2·σ·c2`` and ``skew = σ·c2`` (ticks; ``q`` = position in order lots).

    σ (ticks/√s), A (orders/s) and k (per tick) are estimated from the training split unless given.
    ``quote`` and ``compiled()`` run :func:`cmm_bt_plugins.execution.kernels.glft_quote` (half-spread and
    skew, computed once, in its params).
    """

    name: ClassVar[str] = "glft"
    kernel: ClassVar[str] = "glft_quote"

    class Config(QuotingParams, EstimationParams):
        risk_aversion: float = Field(
            0.5, gt=0, description="Scale-free risk aversion γ̃: γ is chosen so that one lot of inventory skews the quotes by "
            "γ̃/k ticks (σ·c2 = γ̃/k); used unless `gamma` is given.")
        gamma: float | None = Field(None, gt=0, description="Absolute risk aversion γ (per tick); overrides `risk_aversion`.")
        xi: float | None = Field(
            None, gt=0, description="ξ of the objective (ξ=γ: CARA utility; ξ→0: mean-variance); default: γ."
        )
        delta: float = Field(1.0, gt=0, description="Δ, the size of one fill in order lots.")
        sigma: float | None = Field(
            None, gt=0, description="Mid volatility σ, ticks per √second; default: estimated from the training split."
        )
        A: float | None = Field(
            None, gt=0, description="A of λ(δ)=A·exp(-kδ), market orders per second; default: estimated (with k)."
        )
        k: float | None = Field(None, gt=0, description="k of λ(δ)=A·exp(-kδ), per tick; default: estimated (with A).")
        spread_mult: float = Field(1.0, gt=0, description="Multiplier of the half-spread (hftbacktest's adj1).")
        skew_mult: float = Field(1.0, ge=0, description="Multiplier of the inventory skew (hftbacktest's adj2).")

    def __init__(self, config: "GLFT.Config"):
        super().__init__(config)
        if (config.A is None) != (config.k is None):
            raise ConfigError("give both A and k, or neither (they are fitted together)", key="params.A")
        self._coef: tuple[float, float] | None = None

    def fit(self, context: RunContext) -> None:
        """Estimate σ, A and k from ``context.train`` where the config leaves them unset."""
        super().fit(context)
        self._coef = None
        self.reset_compiled()

    def _gamma_from_risk_aversion(self, risk_aversion: float) -> float | None:
        """The γ whose skew σ·c2 is ``risk_aversion / k``."""
        if self.sigma is None or self.A is None or self.k is None:
            return None
        c = self.config
        return gamma_for_skew(risk_aversion / self.k, self.sigma, c.xi, c.delta, self.A, self.k)

    @property
    def fitted(self) -> dict[str, float | None]:
        """The parameters in use (estimated or given) and the resulting half-spread and skew."""
        out = {"sigma": self.sigma, "A": self.A, "k": self.k}
        if None not in out.values():
            out["gamma"] = self.gamma
            out["half_spread"], out["skew"] = self.half_spread_and_skew()
        return out

    def half_spread_and_skew(self) -> tuple[float, float]:
        c = self.config
        if self.sigma is None or self.A is None or self.k is None:
            raise ConfigError("sigma, A and k are unknown: call fit(context) first or set them", key="params")
        if self._coef is None:
            g = self.gamma
            self._coef = glft_coefficients(g, c.xi if c.xi is not None else g, c.delta, self.A, self.k)
        c1, c2 = self._coef
        half = (c1 + 0.5 * c.delta * self.sigma * c2) * c.spread_mult
        skew = self.sigma * c2 * c.skew_mult
        return half, skew

    def build_params(self, kernels) -> np.ndarray:
        half, skew = self.half_spread_and_skew()
        qty, limit = sizing(self.config, self.context)
        p = kernels.common_params(5, qty, limit, self.config.allow_inside_spread)
        p[kernels.GL_HALF], p[kernels.GL_SKEW] = half, skew
        return p
