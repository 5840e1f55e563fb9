from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cmm_bt.components import DecisionState, RunContext
from cmm_bt.data.schema import Instrument
from cmm_bt.errors import ConfigError
from cmm_bt_plugins.execution import cmm_bt_register_execution
from cmm_bt_plugins.execution.avellaneda_stoikov import AvellanedaStoikov
from cmm_bt_plugins.execution.fixed_spread import FixedSpread
from cmm_bt_plugins.execution.glft import GLFT, glft_coefficients

LIMIT = 10.0


def ctx(train=None, **extra):
    return RunContext(Instrument("X", 0.1), 100_000_000, LIMIT, 1.0, train=train, extra=extra)


def st(position=0.0, bid=990, ask=1010, progress=0.0):
    return DecisionState(0, 0, bid, ask, 1.0, 1.0, position, progress)


def build(cls, **params):
    pol = cls(cls.Config(**params))
    pol.fit(ctx())
    return pol


POLICIES = {
    "fixed": lambda **kw: build(FixedSpread, half_spread_ticks=kw.get("h", 2.3), skew_ticks_per_unit=kw.get("s", 0.4)),
    "as": lambda **kw: build(
        AvellanedaStoikov, gamma=kw.get("g", 0.1), sigma=kw.get("sigma", 0.5), k=0.5, horizon="fixed", horizon_s=20.0
    ),
    "glft": lambda **kw: build(GLFT, gamma=kw.get("g", 0.1), sigma=kw.get("sigma", 2.0), A=1.0, k=0.5),
}


def width(q):
    return q.ask_price - q.bid_price


def test_registration_names():
    got = {}
    cmm_bt_register_execution(lambda cls, aliases=(): got.setdefault(cls.name, (cls, aliases)))
    assert set(got) == {"fixed-spread", "avellaneda-stoikov", "glft", "classic-price"}
    assert got["glft"][0] is GLFT


@pytest.mark.parametrize("kind", POLICIES)
@pytest.mark.parametrize("book", [(990, 1010), (995, 1010)])  # integer and half-tick mid
def test_symmetric_at_zero_inventory(kind, book):
    pol = POLICIES[kind]()
    s = st(0.0, *book)
    q = pol.quote(s)
    assert s.mid - q.bid_price == pytest.approx(q.ask_price - s.mid)
    assert q.bid_qty == q.ask_qty == 1.0


@pytest.mark.parametrize("kind", POLICIES)
def test_long_inventory_lowers_both_quotes(kind):
    pol = POLICIES[kind]()
    flat, long_, short = pol.quote(st(0.0)), pol.quote(st(5.0)), pol.quote(st(-5.0))
    assert long_.bid_price < flat.bid_price and long_.ask_price < flat.ask_price
    assert short.bid_price > flat.bid_price and short.ask_price > flat.ask_price


@pytest.mark.parametrize("kind", ["as", "glft"])
def test_spread_widens_with_gamma_and_sigma(kind):
    # (not monotone in γ everywhere: the (2/γ)ln(1+γ/k) / c1 term shrinks with γ; the risk term wins here)
    make = POLICIES[kind]
    assert width(make(g=2.0).quote(st())) > width(make(g=0.05).quote(st()))
    assert width(make(sigma=10.0).quote(st())) > width(make(sigma=1.0).quote(st()))
    # and the inventory skew grows too
    lo, hi = make(g=0.05), make(g=2.0)
    assert hi.quote(st(3.0)).ask_price < lo.quote(st(3.0)).ask_price


def test_as_formula_and_time_decay():
    pol = AvellanedaStoikov(AvellanedaStoikov.Config(gamma=0.1, sigma=0.5, k=0.5, horizon_s=100.0))
    pol.fit(ctx())
    half = 0.5 * (0.1 * 0.25 * 100 + 20 * np.log(1.2))
    q = pol.quote(st(0.0))
    assert (q.bid_price, q.ask_price) == (int(np.floor(1000 - half)), int(np.ceil(1000 + half)))
    r = 1000 - 2 * 0.1 * 0.25 * 50  # position 2, half the episode left
    q2 = pol.quote(st(2.0, progress=0.5))
    half2 = 0.5 * (0.1 * 0.25 * 50 + 20 * np.log(1.2))
    assert (q2.bid_price, q2.ask_price) == (int(np.floor(r - half2)), int(np.ceil(r + half2)))
    assert width(pol.quote(st(progress=0.9))) < width(pol.quote(st(progress=0.0)))


def test_as_episode_length_from_context():
    pol = AvellanedaStoikov(AvellanedaStoikov.Config(sigma=0.5, k=0.5))
    pol.fit(ctx(episode_length_s=42.0))
    assert pol.horizon_s == 42.0
    with pytest.raises(ConfigError, match="horizon_s"):
        AvellanedaStoikov(AvellanedaStoikov.Config(sigma=0.5, k=0.5, horizon="fixed"))


def test_glft_coefficients_match_the_formula():
    g, xi, d, A, k = 0.05, 0.05, 1.0, 2.0, 0.7
    c1, c2 = glft_coefficients(g, xi, d, A, k)
    assert c1 == pytest.approx(np.log(1 + xi * d / k) / (xi * d))
    assert c2 == pytest.approx(np.sqrt(g / (2 * A * d * k) * (1 + xi * d / k) ** (k / (xi * d) + 1)))
    pol = build(GLFT, gamma=g, A=A, k=k, sigma=3.0)
    half, skew = pol.half_spread_and_skew()
    assert half == pytest.approx(c1 + 0.5 * d * 3.0 * c2) and skew == pytest.approx(3.0 * c2)
    q = pol.quote(st(2.0))
    assert q.bid_price == int(np.floor(1000 - half - 2 * skew))
    assert q.ask_price == int(np.ceil(1000 + half - 2 * skew))
    with pytest.raises(ConfigError, match="both A and k"):
        GLFT(GLFT.Config(A=1.0))


@pytest.mark.parametrize("kind", POLICIES)
def test_position_limit_stops_the_breaching_side(kind):
    pol = POLICIES[kind]()
    at_long = pol.quote(st(LIMIT))
    assert at_long.bid_price is None and at_long.bid_qty == 0 and at_long.ask_price is not None
    at_short = pol.quote(st(-LIMIT))
    assert at_short.ask_price is None and at_short.ask_qty == 0 and at_short.bid_price is not None
    near = pol.quote(st(LIMIT - 0.5))  # one more lot would breach it
    assert near.bid_price is None and near.ask_price is not None


def test_tick_rounding_is_outward():
    pol = build(FixedSpread, half_spread_ticks=1.3)
    q = pol.quote(st(0.0, 990, 1010))
    assert (q.bid_price, q.ask_price) == (998, 1002)
    q = pol.quote(st(0.0, 990, 1011))  # mid 1000.5: 999.2 -> 999, 1001.8 -> 1002
    assert (q.bid_price, q.ask_price) == (999, 1002)
    q = build(FixedSpread, half_spread_ticks=2.0).quote(st(0.0))  # exact ticks stay put
    assert (q.bid_price, q.ask_price) == (998, 1002)


@pytest.mark.parametrize("kind", POLICIES)
@pytest.mark.parametrize("inside", [True, False])
def test_never_crosses_the_touch(kind, inside):
    rng = np.random.default_rng(0)
    pol = POLICIES[kind]()
    pol.config = pol.config.model_copy(update={"allow_inside_spread": inside})
    for _ in range(300):
        bid = int(rng.integers(900, 1100))
        ask = bid + int(rng.integers(-1, 6))  # includes locked and crossed local views
        pos = float(rng.integers(-9, 10))
        q = pol.quote(st(pos, bid, ask, progress=float(rng.uniform())))
        assert q.bid_price < q.ask_price
        assert q.bid_price <= ask - 1 and q.ask_price >= bid + 1
        if not inside:
            assert q.bid_price <= bid and q.ask_price >= ask


def test_fit_estimates_from_training_split(market):
    glft = GLFT(GLFT.Config())
    glft.fit(ctx(train=market))
    assert glft.sigma == pytest.approx(np.sqrt(5.0), rel=0.06)
    assert glft.k == pytest.approx(0.4, rel=0.1) and glft.A == pytest.approx(2 * np.exp(0.2), rel=0.1)
    as_ = AvellanedaStoikov(AvellanedaStoikov.Config(sigma=1.0))
    as_.fit(ctx(train=market))
    assert as_.sigma == 1.0 and as_.k == pytest.approx(0.4, rel=0.1)
    assert as_.horizon_s == pytest.approx(2000.0)  # the training session's length


def test_fit_on_too_short_split_is_a_config_error(make_market):
    for cls in (GLFT, AvellanedaStoikov):
        with pytest.raises(ConfigError, match="training split too short"):
            cls(cls.Config()).fit(ctx(train=make_market(seconds=2.0)))
    with pytest.raises(ConfigError, match="no training split"):
        GLFT(GLFT.Config()).fit(ctx(train=None))


def test_unfitted_policy_says_so():
    with pytest.raises(ConfigError, match="fit"):
        GLFT(GLFT.Config()).quote(st())
    with pytest.raises(ConfigError, match="fit"):
        FixedSpread(FixedSpread.Config()).quote(st())


def test_unknown_params_rejected():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GLFT.Config(gama=0.1)
