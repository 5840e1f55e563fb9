"""Whole episodes inside numba for policies with a compiled quoting function (``ExecutionPolicy.compiled``).

:func:`run_steps` runs the same per-step kernel helpers as the Python loop of
:func:`cmm_bt.engine.loop.run_backtest` (advance the exchange and the local view, record the step, send
the quotes) and calls the policy's function through a numba first-class function of type
:data:`POLICY_TYPE`, so results are identical to the Python path.  The explicit signature keeps the
compiled code in numba's on-disk cache whatever the policy function is; it is derived from
:data:`RUN_FIELDS` and the kernel's :data:`~cmm_bt.engine.kernel.STATE_FIELDS`, the order of the
parameters of :func:`run_steps`.
"""

from __future__ import annotations

# numba's on-disk cache of run_steps embeds the kernel helpers it calls but is invalidated only when
# *this* file changes: edit this line whenever cmm_bt/engine/kernel.py or book.py changes what they
# compute.  Kernel revision: per-contract fees (P_MFEE_Q, P_TFEE_Q); state arrays without refcounts.

import numpy as np
from numba import carray, njit, types

from cmm_bt.engine.kernel import (
    A_LPOS,
    F1,
    I1,
    OK,
    R_ASK,
    R_ASKQ,
    R_BID,
    R_BIDQ,
    RF1,
    S_STEP,
    STATE_FIELDS,
    _pointer,
    advance_step,
    send_quotes,
)

_i64, _f64 = types.int64, types.float64
_RF2 = types.Array(_f64, 2, "C", readonly=True)  # the signals are read-only (``loop``)

#: ``fn(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params)
#: -> (bid_price, bid_qty, ask_price, ask_qty)``; see :meth:`cmm_bt.components.ExecutionPolicy.compiled`.
POLICY_SIGNATURE = types.Tuple((_i64, _f64, _i64, _f64))(_i64, _i64, _i64, _f64, _f64, _f64, _f64, RF1, F1)
POLICY_TYPE = types.FunctionType(POLICY_SIGNATURE)

#: The parameters of :func:`run_steps` before the replay state: (name, numba type) in order.
RUN_FIELDS: tuple[tuple[str, types.Type], ...] = (
    ("fn", POLICY_TYPE), ("params", F1), ("signals", _RF2), ("times", I1),
    ("start", _i64), ("span", _f64), ("k1", _i64),  # episode start (ns), its length (ns), end step
)
_RUN_SIGNATURE = _i64(*(t for _, t in RUN_FIELDS + STATE_FIELDS))


@njit(cache=True, inline="always")
def _unref(a):  # pragma: no cover - compiled
    """A view of ``a`` that carries no reference count: numba increments and decrements (atomically)
    the count of every array passed to a helper, ~5 ns each, ~0.1 µs per helper call with the kernel's
    ten-odd state arrays, even when the helper is inlined and has nothing to do.  Valid while ``a``
    lives: the caller holds every state array for the whole call."""
    return carray(_pointer(a.ctypes.data, a.dtype), a.shape)


@njit(_RUN_SIGNATURE, cache=True)
def run_steps(fn, params, signals, times, start, span, k1, ts, lts, kind, side, lv, qty, perm, ladder, books, bests,
              st, fl, o_i, o_f, rq, f_i, f_f, rec):
    """Decision steps ``st[S_STEP] .. k1 - 1`` of one episode starting at ``start`` (``span`` ns long).

    Returns ``OK`` or a kernel error code; after ``NEED_FILL_SPACE`` grow the fill log and call again
    (it resumes at ``st[S_STEP]``).
    """
    ts, lts, kind, side, lv, qty, perm, ladder = _unref(ts), _unref(lts), _unref(kind), _unref(side), _unref(lv), _unref(qty), _unref(perm), _unref(ladder)
    books, bests, st, fl, o_i, o_f, rq = _unref(books), _unref(bests), _unref(st), _unref(fl), _unref(o_i), _unref(o_f), _unref(rq)
    f_i, f_f, rec = _unref(f_i), _unref(f_f), _unref(rec)
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
