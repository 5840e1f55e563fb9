"""Whole episodes inside numba for policies with a compiled quoting function (``ExecutionPolicy.compiled``).

:func:`run_steps` runs the same per-step kernel helpers as the Python loop of
:func:`cmm_bt.engine.loop.run_backtest` (advance the exchange and the local view, record the step, send
the quotes) and calls the policy's function through a numba first-class function of type
:data:`POLICY_TYPE`, so results are identical to the Python path.  The explicit signature keeps the
compiled code in numba's on-disk cache whatever the policy function is.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from cmm_bt.engine.kernel import A_LPOS, OK, R_ASK, R_ASKQ, R_BID, R_BIDQ, S_STEP, advance_step, send_quotes

_i64, _f64 = types.int64, types.float64
_I1, _I2 = types.Array(_i64, 1, "C"), types.Array(_i64, 2, "C")
_F1, _F2, _F3 = types.Array(_f64, 1, "C"), types.Array(_f64, 2, "C"), types.Array(_f64, 3, "C")
# the event arrays, the ladder and the signals are read-only (``loop``)
_RI1, _RB1, _RF1 = (types.Array(t, 1, "C", readonly=True) for t in (_i64, types.int8, _f64))
_RF2 = types.Array(_f64, 2, "C", readonly=True)

#: ``fn(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params)
#: -> (bid_price, bid_qty, ask_price, ask_qty)``; see :meth:`cmm_bt.components.ExecutionPolicy.compiled`.
POLICY_SIGNATURE = types.Tuple((_i64, _f64, _i64, _f64))(_i64, _i64, _i64, _f64, _f64, _f64, _f64, _RF1, _F1)
POLICY_TYPE = types.FunctionType(POLICY_SIGNATURE)

_RUN_SIGNATURE = _i64(
    POLICY_TYPE, _F1, _RF2, _I1, _i64, _f64, _i64,  # fn, params, signals, times, episode start, span, end step
    _RI1, _RI1, _RB1, _RB1, _RI1, _RF1, _RI1, _RI1,  # ts, lts, kind, side, lv, qty, perm, ladder
    _F3, _I2, _I1, _F1, _I2, _F2, _I2, _I2, _F2, _F2,  # books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec
)


@njit(_RUN_SIGNATURE, cache=True)
def run_steps(fn, params, signals, times, start, span, k1, ts, lts, kind, side, lv, qty, perm, ladder, books, bests,
              st, fl, o_i, o_f, rq, f_i, f_f, rec):
    """Decision steps ``st[S_STEP] .. k1 - 1`` of one episode starting at ``start`` (``span`` ns long).

    Returns ``OK`` or a kernel error code; after ``NEED_FILL_SPACE`` grow the fill log and call again
    (it resumes at ``st[S_STEP]``).
    """
    for k in range(st[S_STEP], k1):
        t = times[k]
        code = advance_step(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i,
                            f_f, rec, k, t)
        if code != OK:
            return code
        bid_px, bid_qty, ask_px, ask_qty = fn(t, np.int64(rec[k, R_BID]), np.int64(rec[k, R_ASK]), rec[k, R_BIDQ],
                                              rec[k, R_ASKQ], fl[A_LPOS], (t - start) / span, signals[k], params)
        st[S_STEP] = k + 1
        code = send_quotes(st, o_i, o_f, rq, rec, k, t, bid_px, bid_qty, ask_px, ask_qty)
        if code != OK:
            return code
    return OK
