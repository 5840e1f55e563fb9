"""The quoting arithmetic of the classic market makers, compiled once with numba (``cache=True``).

Each function with the engine's policy signature (``ts, best_bid, best_ask, bid_qty, ask_qty, position,
episode_progress, signals, params -> (bid_price, bid_qty, ask_price, ask_qty)``, see
:meth:`cmm_bt.components.ExecutionPolicy.compiled`) is compiled eagerly for exactly
:data:`cmm_bt.engine.compiled.POLICY_SIGNATURE`.  A policy's Python ``quote`` calls the *same* compiled
function with the same ``params`` as its ``compiled()`` path (one machine-code version, no second
implementation; classic-price's Python path passes its three signals by name as a row of their own,
with the column indices 0, 1, 2), so the Python and compiled paths cannot drift apart.  Everything that is
constant over a run (σ², ``(2/γ)·ln(1+γ/k)``, GLFT's half-spread and skew, sizes and limits) is
computed once in Python by the policy and passed in ``params``; per step there is only ``+ - * /``,
``floor`` / ``ceil`` and, for classic-price, ``expm1``.

Imported on first use (``quote`` / ``compiled()``), so registering the plugins does not import numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cmm_bt.components import NO_PRICE
from cmm_bt.engine.compiled import POLICY_SIGNATURE
from cmm_bt.errors import ConfigError

#: Slack of the tick rounding and of the position-limit test.
EPS = 1e-9

# ---- params layout (float64 array; bools as 1.0 / 0.0) ----
P_QTY, P_LIMIT, P_INSIDE = 0, 1, 2  # every policy: order size, |position| limit, allow_inside_spread
FS_HALF, FS_SKEW = 3, 4  # fixed-spread: half-spread (ticks), skew (ticks per unit of position)
AS_GAMMA, AS_VAR, AS_HORIZON, AS_FIXED, AS_LOG = 3, 4, 5, 6, 7  # A-S: γ, σ², horizon_s, fixed?, (2/γ)ln(1+γ/k)
GL_HALF, GL_SKEW = 3, 4  # GLFT: half-spread and skew per lot (ticks)
# classic-price: alpha, spread_scale, min_spread_ticks, skew_ticks_per_unit, size_fraction, min/max qty, lot,
# the signal columns of pred_mid / pred_spread / pred_volume, and the signal width required (-1: any)
(CP_ALPHA, CP_SCALE, CP_MIN_SPREAD, CP_SKEW, CP_FRAC, CP_LO, CP_HI, CP_LOT,
 CP_COL_MID, CP_COL_SPREAD, CP_COL_VOL, CP_WIDTH) = range(3, 15)
CP_SIZE = 15


class MissingSignals(ConfigError):
    """classic-price's compiled path met a signal row without (or with unknown) ``pred_*`` columns."""

    def __init__(self, message: str):
        super().__init__(message, key="execution")


@njit(cache=True)
def place(bid, ask, best_bid, best_ask, position, qty, limit, inside):
    """Quotes at ``bid`` / ``ask`` (float ticks; non-finite = not quoted), rounded outward (⌊bid⌋, ⌈ask⌉)
    and clamped post-only (bid ≤ best_ask − 1, ask ≥ best_bid + 1; without ``inside`` also behind the
    touch), dropping a side whose fill of ``qty`` would take |position| beyond ``limit``."""
    bid_px, bid_q, ask_px, ask_q = NO_PRICE, 0.0, NO_PRICE, 0.0
    if math.isfinite(bid) and position + qty <= limit + EPS:
        b = min(math.floor(bid + EPS), best_ask - 1)
        bid_px, bid_q = (b if inside else min(b, best_bid)), qty
    if math.isfinite(ask) and position - qty >= -limit - EPS:
        a = max(math.ceil(ask - EPS), best_bid + 1)
        ask_px, ask_q = (a if inside else max(a, best_ask)), qty
    return bid_px, bid_q, ask_px, ask_q


@njit(POLICY_SIGNATURE, cache=True)
def fixed_spread_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    """``mid ∓ half − skew·position``."""
    centre = 0.5 * (best_bid + best_ask) - params[FS_SKEW] * position
    half = params[FS_HALF]
    return place(centre - half, centre + half, best_bid, best_ask, position, params[P_QTY], params[P_LIMIT],
                 params[P_INSIDE] != 0.0)


@njit(POLICY_SIGNATURE, cache=True)
def avellaneda_stoikov_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    """``r = mid − q·γ·σ²·τ``, ``half = (γσ²τ + (2/γ)ln(1+γ/k)) / 2``, ``q = position / order_qty``."""
    qty = params[P_QTY]
    q = position / qty
    g, var = params[AS_GAMMA], params[AS_VAR]
    if params[AS_FIXED] != 0.0:
        tau = params[AS_HORIZON]
    else:
        left = 1.0 - episode_progress
        tau = (left if left > 0.0 else 0.0) * params[AS_HORIZON]
    r = 0.5 * (best_bid + best_ask) - q * g * var * tau
    half = 0.5 * (g * var * tau + params[AS_LOG])
    return place(r - half, r + half, best_bid, best_ask, position, qty, params[P_LIMIT], params[P_INSIDE] != 0.0)


@njit(POLICY_SIGNATURE, cache=True)
def glft_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    """``mid − (half + skew·q)`` / ``mid + (half − skew·q)``, ``q = position / order_qty``."""
    qty = params[P_QTY]
    q = position / qty
    mid = 0.5 * (best_bid + best_ask)
    half, skew = params[GL_HALF], params[GL_SKEW]
    return place(mid - (half + skew * q), mid + (half - skew * q), best_bid, best_ask, position, qty,
                 params[P_LIMIT], params[P_INSIDE] != 0.0)


@njit(cache=True)
def classic_size(pred_volume, size_fraction, lo, hi, lot):
    """``clip(round_down_to_lot(size_fraction·(exp(pred_volume) − 1)), lo, hi)``; ``lo`` if not finite."""
    if not math.isfinite(pred_volume):
        return lo
    raw = size_fraction * math.expm1(min(max(pred_volume, 0.0), 50.0))
    if lot > 0.0:
        raw = np.floor(raw / lot + 1e-9) * lot
    return min(max(raw, lo), hi)


@njit(POLICY_SIGNATURE, cache=True)
def classic_price_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    """Centre ``mid + α·pred_mid − κ·position``, width ``max(scale·pred_spread, min_spread)``, size from
    ``pred_volume``; non-finite signals: ``pred_mid`` → 0, ``pred_spread`` → the spread, size → ``lo``."""
    i_mid, i_spread, i_vol = int(params[CP_COL_MID]), int(params[CP_COL_SPREAD]), int(params[CP_COL_VOL])
    width = int(params[CP_WIDTH])
    n = signals.shape[0]
    if n == 0:
        raise MissingSignals("classic-price needs the signals pred_mid, pred_spread, pred_volume but the strategy "
                             "has none: add a model stage (e.g. teacher: {name: hf-causal-lm}) to the strategy")
    if (width >= 0 and n != width) or n <= max(i_mid, max(i_spread, i_vol)):
        raise MissingSignals("classic-price (compiled): the signal table's columns are not pred_mid, pred_spread, "
                             "pred_volume and the policy was not told their order (RunContext.extra"
                             "['signal_columns'])")
    p_mid, p_spread, p_vol = signals[i_mid], signals[i_spread], signals[i_vol]
    if not math.isfinite(p_mid):
        p_mid = 0.0
    if not math.isfinite(p_spread):
        p_spread = float(best_ask - best_bid)
    centre = 0.5 * (best_bid + best_ask) + params[CP_ALPHA] * p_mid - params[CP_SKEW] * position
    half = 0.5 * max(params[CP_SCALE] * p_spread, params[CP_MIN_SPREAD])
    qty = classic_size(p_vol, params[CP_FRAC], params[CP_LO], params[CP_HI], params[CP_LOT])
    return place(centre - half, centre + half, best_bid, best_ask, position, qty, params[P_LIMIT],
                 params[P_INSIDE] != 0.0)


def common_params(size: int, qty: float, limit: float, inside: bool) -> np.ndarray:
    """A zeroed params array of ``size`` with the order size, the position limit and allow_inside_spread."""
    p = np.zeros(size, np.float64)
    p[P_QTY], p[P_LIMIT], p[P_INSIDE] = qty, limit, 1.0 if inside else 0.0
    return p
