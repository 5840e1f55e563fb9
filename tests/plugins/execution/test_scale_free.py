"""Scale-free risk aversion of A-S and GLFT: one lot skews the quotes by risk_aversion / k ticks."""

from __future__ import annotations

import json
import math

import pytest

from cmm_bt_plugins.execution.avellaneda_stoikov import AvellanedaStoikov
from cmm_bt_plugins.execution.glft import GLFT, gamma_for_skew, glft_coefficients


def _fitted_as(**params):
    p = AvellanedaStoikov(AvellanedaStoikov.Config(sigma=2.0, k=0.5, horizon="fixed", horizon_s=60.0, **params))
    p.horizon_s = 60.0
    return p


def test_as_gamma_follows_the_risk_aversion():
    p = _fitted_as(risk_aversion=0.5)
    # reservation shift of one lot at the start of the horizon: q γ σ² T = γ̃ / k
    assert p.gamma * 2.0**2 * 60.0 == pytest.approx(0.5 / 0.5)
    assert _fitted_as(risk_aversion=0.5, gamma=0.3).gamma == 0.3  # an absolute γ wins
    # the same γ̃ on an instrument ten times as volatile (in ticks) gives a γ 100 times smaller
    q = AvellanedaStoikov(AvellanedaStoikov.Config(sigma=20.0, k=0.5, horizon="fixed", horizon_s=60.0))
    q.horizon_s = 60.0
    assert p.gamma / q.gamma == pytest.approx(100.0)


@pytest.mark.parametrize("sigma, A, k", [(0.7, 1.3, 2.0), (41.0, 3.9, 0.058), (3.0, 0.2, 1.2)])
def test_glft_gamma_gives_the_requested_skew(sigma, A, k):
    g = gamma_for_skew(0.5 / k, sigma, None, 1.0, A, k)
    c1, c2 = glft_coefficients(g, g, 1.0, A, k)
    assert sigma * c2 == pytest.approx(0.5 / k, rel=1e-6)
    pol = GLFT(GLFT.Config(sigma=sigma, A=A, k=k))
    assert pol.half_spread_and_skew()[1] == pytest.approx(0.5 / k, rel=1e-6) and math.isclose(pol.gamma, g)


@pytest.mark.parametrize("strategy", ["avellaneda-stoikov", "glft"])
def test_defaults_trade_on_binance_btcusdt(cli, tmp_path, data_root, strategy):
    """With a γ per tick² the old default never quoted inside the book on BTCUSDT (0 fills)."""
    res = cli("run", f"strategies/{strategy}.yaml", "--dataset", "binance-usdm-btcusdt", "--out", tmp_path / "run")
    assert res.code == 0, res.err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["fills"] > 10 and m["fitted_gamma"] > 0
