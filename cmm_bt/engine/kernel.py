"""The compiled exchange simulator: matching of the agent's orders against a replayed L2 book.

Everything here is ``numba.njit``.  Python calls :func:`step` once per decision step (it applies the
previous step's quotes, advances the exchange and the local view to the step time and returns the
local top of book), never per market event; :mod:`cmm_bt.engine.compiled` runs the same helpers
with a compiled policy for a whole episode.  :class:`Exchange` owns the state arrays.

Every entry point called from Python (:func:`step`, :func:`advance`, :func:`quote`,
:func:`end_episode`, :func:`cmm_bt.engine.compiled.run_steps`) takes the replay state first, as the
fields of :class:`State` in the order of :data:`STATE_FIELDS`, then its own scalars;
``Exchange.args`` is that tuple and ``run_steps``' explicit numba signature is derived from the same
list (``tests/engine/test_engine_signatures.py`` checks both).  The Python policy loop calls
:func:`step_packed` instead of :func:`step`: the same step with the state passed as one int64
:func:`descriptor` (each array's address and shape, ``Exchange.desc``), because unboxing the 18
state arrays at every call cost ~2 µs per decision step.

State layout (all plain numpy arrays so numba can cache the compiled code):

* events in exchange order: ``ts``, ``lts`` (local times), ``kind``, ``side``, ``lv`` (ladder
  index, see :mod:`cmm_bt.engine.book`), ``qty``; ``perm`` is their local-time order; ``ladder``
  the prices (ticks);
* ``books`` float64[2, 2, nlv] and ``bests`` int64[2, N_BESTS] (slots ``B_*``, see
  :mod:`cmm_bt.engine.book`): the exchange book (``EXCH``) and the local book (``LOCAL``);
* ``st`` int64 counters, pointers and integer parameters (``S_*``, ``I_*``); ``fl`` float64
  money/position (``A_*``) and parameters (``P_*``);
* the order table ``o_i`` int64[C, N_OI] / ``o_f`` float64[C, N_OF] (``OI_*``, ``OF_*``);
* the FIFO of requests in flight ``rq`` int64[R, N_RQ] (``RQ_*``: arrival time, kind, slot, order id);
* the fill log ``f_i`` int64[F, N_FI] / ``f_f`` float64[F, N_FF] (``FI_*``, ``FF_*``);
* ``rec`` float64[steps, N_REC], one row per decision step (``R_*``).

Queue models live in :mod:`cmm_bt.engine.queue` (one function and one registry entry each); this
module compiles them and dispatches on ``st[I_QMODEL]``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from cmm_bt.components import NO_PRICE
from cmm_bt.data.schema import BID, BOOK, CLEAR, TRADE
from cmm_bt.engine.book import (
    B_ASK,
    B_ASK_HI,
    B_BID,
    B_BID_LO,
    apply_market_event,
    book_clear,
    book_set,
    ladder_index,
    new_bests,
    scan_down,
    scan_up,
    span_lo,
)
from cmm_bt.engine.queue import QUEUE_MODELS, queue_model_code

# st: counters and pointers
S_EV, S_RQH, S_RQT, S_NFILL, S_NSLOT, S_NEXT_ID, S_SUB, S_CXL, S_REJ, S_FILLED, S_EVENTS = range(11)
S_EPISODE, S_KNOWN, S_CUR_B, S_CURID_B, S_CUR_A, S_CURID_A = range(11, 17)
S_REJ_POST, S_REJ_LIMIT, S_REJ_RANGE, S_TAKER_ORDERS, S_LEV, S_LAST_B, S_LAST_A, S_STEP = range(17, 25)
# st: integer parameters (accepted quote prices [I_LO, I_HI] in ticks, latencies in ns)
I_LO, I_HI, I_QMODEL, I_PARTIAL, I_POST, I_ENTRY, I_RESP = range(25, 32)
N_ST = 32
# fl: account and float parameters
A_POS, A_CASH, A_FEES, A_VOL, A_LPOS = range(5)
P_TV, P_MFEE, P_TFEE, P_LIMIT, P_LOT, P_QEXP = range(5, 11)
P_MFEE_Q, P_TFEE_Q = range(11, 13)  # per-contract fees (money per unit of quantity), 0 unless fee_model per-contract
P_INV = 13  # 1.0: inverse contract (P_TV = multiplier / tick_size, value = -qty * P_TV / price), 0.0: linear
N_FL = 14
# orders
OI_ID, OI_SIDE, OI_PX, OI_STATUS, OI_DONE_TS = range(5)
OF_QTY, OF_LEAVES, OF_FRONT, OF_CUM = range(4)
N_OI, N_OF = 5, 4
FREE, PENDING, LIVE, DONE = 0, 1, 2, 3
# requests: columns (arrival time at the exchange, kind, order slot, order id) and kinds
RQ_TS, RQ_KIND, RQ_SLOT, RQ_OID = range(4)
N_RQ = 4
RQ_NEW, RQ_CANCEL = 1, 2
# fills
FI_TS, FI_OID, FI_SIDE, FI_PX, FI_MAKER, FI_EPISODE = range(6)
FF_QTY, FF_FEE, FF_MID = range(3)
N_FI, N_FF = 6, 3
# rec: per decision step (exchange-side position and cash, local top of book, the quotes sent)
R_POS, R_CASH, R_BID, R_ASK, R_BIDQ, R_ASKQ, R_BIDQUOTE, R_ASKQUOTE = range(8)
N_REC = 8
# first axis of ``books`` and ``bests``
EXCH, LOCAL = 0, 1

_i64, _f64 = types.int64, types.float64
I1, I2 = types.Array(_i64, 1, "C"), types.Array(_i64, 2, "C")
F1, F2, F3 = types.Array(_f64, 1, "C"), types.Array(_f64, 2, "C"), types.Array(_f64, 3, "C")
# the event arrays and the ladder are read-only (``loop._prepare``)
RI1, RB1, RF1 = (types.Array(t, 1, "C", readonly=True) for t in (_i64, types.int8, _f64))

#: The replay state every kernel entry point takes first: (name, numba type) in argument order.
STATE_FIELDS: tuple[tuple[str, types.Type], ...] = (
    ("ts", RI1), ("lts", RI1), ("kind", RB1), ("side", RB1), ("lv", RI1), ("qty", RF1), ("perm", RI1),
    ("ladder", RI1),
    ("books", F3), ("bests", I2), ("st", I1), ("fl", F1), ("o_i", I2), ("o_f", F2), ("rq", I2),
    ("f_i", I2), ("f_f", F2), ("rec", F2),
)
#: numba types of the state, in argument order (for explicit signatures).
STATE_TYPES: tuple[types.Type, ...] = tuple(t for _, t in STATE_FIELDS)
#: The state as a tuple of arrays; ``Exchange.args`` is one, passed as ``fn(*ex.args, ...)``.
State = NamedTuple("State", [(name, np.ndarray) for name, _ in STATE_FIELDS])

_MAX_TS = np.iinfo(np.int64).max
_EPS = 1e-9
#: Most price levels one crossing order walks; any remainder rests at its limit price.
MAX_WALK = 64
#: Codes returned by the kernels.
OK, NEED_FILL_SPACE, ORDER_TABLE_FULL, REQUEST_QUEUE_FULL = 0, 1, 2, 3


@njit(cache=True)
def _value(fl, qty, price):
    """Money value of ``qty`` at ``price`` ticks (:meth:`cmm_bt.data.schema.Instrument.value`)."""
    if fl[P_INV] != 0.0:
        return -qty * fl[P_TV] / price
    return qty * price * fl[P_TV]


@njit(cache=True)
def _record_fill(st, fl, ladder, bests, f_i, f_f, oid, side, price, qty, maker, ts):
    notional = _value(fl, qty, price)
    fee = (fl[P_MFEE] if maker else fl[P_TFEE]) * abs(notional)
    per_q = fl[P_MFEE_Q] if maker else fl[P_TFEE_Q]
    if per_q != 0.0:  # per-contract fee model (proportional configurations never take this branch)
        fee += per_q * qty
    fl[A_POS] += side * qty
    fl[A_CASH] -= side * notional + fee
    fl[A_FEES] += fee
    fl[A_VOL] += qty
    k = st[S_NFILL]
    f_i[k, FI_TS] = ts
    f_i[k, FI_OID] = oid
    f_i[k, FI_SIDE] = side
    f_i[k, FI_PX] = price
    f_i[k, FI_MAKER] = 1 if maker else 0
    f_i[k, FI_EPISODE] = st[S_EPISODE]
    f_f[k, FF_QTY] = qty
    f_f[k, FF_FEE] = fee
    if bests[B_BID] >= 0 and bests[B_ASK] < ladder.shape[0]:
        f_f[k, FF_MID] = 0.5 * (ladder[bests[B_BID]] + ladder[bests[B_ASK]])
    else:
        f_f[k, FF_MID] = np.nan
    st[S_NFILL] = k + 1


@njit(cache=True)
def _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, slot, qty, price, maker, ts):
    _record_fill(st, fl, ladder, bests, f_i, f_f, o_i[slot, OI_ID], o_i[slot, OI_SIDE], price, qty, maker, ts)
    left = o_f[slot, OF_LEAVES] - qty
    if left <= _EPS * max(1.0, o_f[slot, OF_QTY]):
        o_f[slot, OF_LEAVES] = 0.0
        o_i[slot, OI_STATUS] = DONE
        o_i[slot, OI_DONE_TS] = ts
        st[S_FILLED] += 1
    else:
        o_f[slot, OF_LEAVES] = left


@njit(cache=True, inline="always")
def _queue_exec(front, lot):
    """Quantity executable once the queue ahead is negative (hftbacktest ``is_filled``)."""
    if front >= 0.0:
        return 0.0
    return math.floor(-front / lot + _EPS) * lot


def _queue_dispatch(models, code=0):
    """``f(code, front, prev, new, cum, exponent)``: the model number ``code`` of ``models`` (the
    functions of :data:`cmm_bt.engine.queue.QUEUE_MODELS`, compiled here), as an if-chain that numba
    inlines like a hand-written one.  An unknown code falls through to the last model."""
    head = njit(cache=True, inline="always")(models[0])
    if len(models) == 1:

        @njit(inline="always")
        def last(code, front, prev, new, cum, exponent):
            return head(front, prev, new, cum, exponent)

        return last
    rest = _queue_dispatch(models[1:], code + 1)

    @njit(inline="always")
    def link(c, front, prev, new, cum, exponent):
        if c == code:
            return head(front, prev, new, cum, exponent)
        return rest(c, front, prev, new, cum, exponent)

    return link


_queue_front = _queue_dispatch(tuple(m.function for m in QUEUE_MODELS.values()))


@njit(cache=True, inline="always")
def _queue_depth(o_f, slot, prev, new, qmodel, qexp):
    """Level quantity at our price went ``prev -> new``: the queue model ``qmodel`` (its number in
    ``QUEUE_MODELS``) moves the quantity ahead of us; the trades counted since are reset."""
    o_f[slot, OF_FRONT] = _queue_front(qmodel, o_f[slot, OF_FRONT], prev, new, o_f[slot, OF_CUM], qexp)
    o_f[slot, OF_CUM] = 0.0


@njit(cache=True, inline="always")
def _on_trade(st, fl, ladder, bests, o_i, o_f, f_i, f_f, aggr, p, q, ts):
    """A trade at ``p`` ticks of ``q`` with aggressor ``aggr``: trade-through fills and queue advance."""
    partial = st[I_PARTIAL] != 0
    lot = fl[P_LOT]
    for s in range(st[S_NSLOT]):
        if o_i[s, OI_STATUS] != LIVE or o_i[s, OI_SIDE] == aggr:
            continue
        px = o_i[s, OI_PX]
        through = (px < p) if o_i[s, OI_SIDE] != BID else (px > p)
        if through:
            _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, s, o_f[s, OF_LEAVES], px, True, ts)
        elif px == p:
            o_f[s, OF_FRONT] -= q
            o_f[s, OF_CUM] += q
            ex = _queue_exec(o_f[s, OF_FRONT], lot)
            if ex > 0.0:
                if partial:
                    fq = min(ex, o_f[s, OF_LEAVES])
                    o_f[s, OF_FRONT] += fq
                else:
                    fq = o_f[s, OF_LEAVES]
                _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, s, fq, px, True, ts)


@njit(cache=True)
def _check_crossed(st, fl, ladder, bests, o_i, o_f, f_i, f_f, ts):
    """Fill resting orders that the opposite best quote reached (book depletion / crossing)."""
    n = ladder.shape[0]
    for s in range(st[S_NSLOT]):
        if o_i[s, OI_STATUS] != LIVE:
            continue
        px = o_i[s, OI_PX]
        if o_i[s, OI_SIDE] == BID:
            hit = bests[B_ASK] < n and px >= ladder[bests[B_ASK]]
        else:
            hit = bests[B_BID] >= 0 and px <= ladder[bests[B_BID]]
        if hit:
            _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, s, o_f[s, OF_LEAVES], px, True, ts)


@njit(cache=True, inline="always")
def _on_book(st, fl, ladder, book, bests, o_i, o_f, f_i, f_f, side, lv, q, ts):
    """A level update at ladder index ``lv``: queue models of our orders there, then crossing fills."""
    b0 = bests[B_BID]
    a0 = bests[B_ASK]
    prev = book_set(book, bests, 0 if side == BID else 1, lv, q)
    nslot = st[S_NSLOT]
    if nslot == 0:
        return
    p = ladder[lv]
    for s in range(nslot):
        if o_i[s, OI_STATUS] == LIVE and o_i[s, OI_SIDE] == side and o_i[s, OI_PX] == p:
            _queue_depth(o_f, s, prev, q, st[I_QMODEL], fl[P_QEXP])
    if bests[B_BID] != b0 or bests[B_ASK] != a0:
        _check_crossed(st, fl, ladder, bests, o_i, o_f, f_i, f_f, ts)


@njit(cache=True)
def _on_new(st, fl, ladder, book, bests, o_i, o_f, f_i, f_f, s, ts):
    """A new order reaches the exchange: position limit, post-only / taking, or rest."""
    n = ladder.shape[0]
    side = o_i[s, OI_SIDE]
    px = o_i[s, OI_PX]
    qty = o_f[s, OF_QTY]
    # position limit: inventory + every open same-side order + this one
    open_q = 0.0
    for k in range(st[S_NSLOT]):
        if k != s and o_i[k, OI_STATUS] == LIVE and o_i[k, OI_SIDE] == side:
            open_q += o_f[k, OF_LEAVES]
    if side * fl[A_POS] + open_q + qty > fl[P_LIMIT] + _EPS:
        o_i[s, OI_STATUS] = DONE
        o_i[s, OI_DONE_TS] = ts
        st[S_REJ] += 1
        st[S_REJ_LIMIT] += 1
        return
    if side == BID:
        cross = bests[B_ASK] < n and px >= ladder[bests[B_ASK]]
    else:
        cross = bests[B_BID] >= 0 and px <= ladder[bests[B_BID]]
    if cross:
        if st[I_POST] != 0:
            o_i[s, OI_STATUS] = DONE
            o_i[s, OI_DONE_TS] = ts
            st[S_REJ] += 1
            st[S_REJ_POST] += 1
            return
        st[S_TAKER_ORDERS] += 1
        o_i[s, OI_STATUS] = LIVE
        walked = 0
        if side == BID:
            j = bests[B_ASK]
            while o_i[s, OI_STATUS] == LIVE and j < n and ladder[j] <= px and walked < MAX_WALK:
                fq = min(o_f[s, OF_LEAVES], book[1, j])
                _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, s, fq, ladder[j], False, ts)
                j = scan_up(book[1], j + 1, bests[B_ASK_HI], n)
                walked += 1
        else:
            j = bests[B_BID]
            while o_i[s, OI_STATUS] == LIVE and j >= 0 and ladder[j] >= px and walked < MAX_WALK:
                fq = min(o_f[s, OF_LEAVES], book[0, j])
                _fill_order(st, fl, ladder, bests, o_i, o_f, f_i, f_f, s, fq, ladder[j], False, ts)
                j = scan_down(book[0], j - 1, bests[B_BID_LO])
                walked += 1
        o_f[s, OF_FRONT] = 0.0  # any remainder rests ahead of the (stale) level at its price
        o_f[s, OF_CUM] = 0.0
        return
    o_i[s, OI_STATUS] = LIVE
    j = ladder_index(ladder, px)
    o_f[s, OF_FRONT] = book[0 if side == BID else 1, j] if j >= 0 else 0.0
    o_f[s, OF_CUM] = 0.0


@njit(cache=True, inline="always")
def _on_request(st, fl, ladder, book, bests, o_i, o_f, rq, f_i, f_f, h, tr):
    """Request ``h`` of the FIFO arrives at the exchange at ``tr``."""
    s = rq[h, RQ_SLOT]
    if o_i[s, OI_ID] == rq[h, RQ_OID]:
        if rq[h, RQ_KIND] == RQ_NEW:
            if o_i[s, OI_STATUS] == PENDING:
                _on_new(st, fl, ladder, book, bests, o_i, o_f, f_i, f_f, s, tr)
        elif o_i[s, OI_STATUS] == LIVE:
            o_i[s, OI_STATUS] = DONE
            o_i[s, OI_DONE_TS] = tr
            st[S_CXL] += 1
    st[S_RQH] = h + 1


@njit(cache=True, inline="always")
def _advance_exchange(ts, kind, side, lv, qty, ladder, book, bests, st, fl, o_i, o_f, rq, f_i, f_f, until):
    """Process market events (``exch_ts <= until``) and request arrivals (``<= until``) in time order.

    At equal timestamps market events go first.  Afterwards fills with ``ts + response latency <=
    until`` are added to the locally known position.  Returns ``OK`` or ``NEED_FILL_SPACE`` (grow
    the fill log and call again; nothing is lost).
    """
    ne = ts.shape[0]
    cap = f_i.shape[0]
    i = st[S_EV]
    i0 = i
    code = OK
    while True:
        if st[S_NFILL] + st[S_NSLOT] + MAX_WALK + 2 >= cap:
            code = NEED_FILL_SPACE
            break
        h = st[S_RQH]
        te = ts[i] if i < ne else _MAX_TS
        tr = rq[h, RQ_TS] if h < st[S_RQT] else _MAX_TS
        if te <= tr:
            if te > until:
                break
            k = kind[i]
            if k == BOOK:
                sd = side[i]
                row = 0 if sd == BID else 1
                p = lv[i]
                q = qty[i]
                if q > 0.0:
                    quiet = p < bests[B_BID] if row == 0 else p > bests[B_ASK]
                else:
                    quiet = p != bests[B_BID + row]  # B_ASK == B_BID + 1
                if quiet:  # no best price moves: the common case, written out (helpers taking arrays
                    # cost tens of ns per event in numba reference counting)
                    prev = book[row, p]
                    book[row, p] = q
                    if q > 0.0:
                        w = span_lo(row)
                        if p < bests[w]:
                            bests[w] = p
                        if p > bests[w + 1]:
                            bests[w + 1] = p
                    if st[S_NSLOT] > 0:
                        pt = ladder[p]
                        for s in range(st[S_NSLOT]):
                            if o_i[s, OI_STATUS] == LIVE and o_i[s, OI_SIDE] == sd and o_i[s, OI_PX] == pt:
                                _queue_depth(o_f, s, prev, q, st[I_QMODEL], fl[P_QEXP])
                else:
                    _on_book(st, fl, ladder, book, bests, o_i, o_f, f_i, f_f, sd, p, q, te)
            elif k == TRADE:
                if st[S_NSLOT] > 0:
                    _on_trade(st, fl, ladder, bests, o_i, o_f, f_i, f_f, side[i], ladder[lv[i]], qty[i], te)
            elif k == CLEAR:
                book_clear(book, bests, 0 if side[i] == BID else 1)
            i += 1
        else:
            if tr > until:
                break
            _on_request(st, fl, ladder, book, bests, o_i, o_f, rq, f_i, f_f, h, tr)
    st[S_EV] = i
    st[S_EVENTS] += i - i0
    if code != OK:
        return code
    if st[S_RQH] == st[S_RQT]:
        st[S_RQH] = 0
        st[S_RQT] = 0
    resp = st[I_RESP]
    while st[S_KNOWN] < st[S_NFILL] and f_i[st[S_KNOWN], FI_TS] + resp <= until:
        k = st[S_KNOWN]
        fl[A_LPOS] += f_i[k, FI_SIDE] * f_f[k, FF_QTY]
        st[S_KNOWN] = k + 1
    return OK


@njit(cache=True, inline="always")
def _advance_local(lts, kind, side, lv, qty, perm, book, bests, st, until):
    """Apply the events with ``local_ts <= until`` (in local-time order) to the local book."""
    ne = perm.shape[0]
    n = book.shape[1]
    k = st[S_LEV]
    while k < ne:
        e = perm[k]
        if lts[e] > until:
            break
        p = lv[e]
        q = qty[e]
        row = 0 if side[e] == BID else 1
        if kind[e] == BOOK and (p != bests[B_BID + row] if q <= 0.0 else (p < bests[B_BID] if row == 0 else p > bests[B_ASK])):
            book[row, p] = q  # no best price moves: written out, as in _advance_exchange
            if q > 0.0:
                w = span_lo(row)
                if p < bests[w]:
                    bests[w] = p
                if p > bests[w + 1]:
                    bests[w + 1] = p
        else:
            apply_market_event(book, bests, kind[e], side[e], p, q)
        k += 1
    st[S_LEV] = k
    if bests[B_BID] >= 0:
        st[S_LAST_B] = bests[B_BID]
    if bests[B_ASK] < n:
        st[S_LAST_A] = bests[B_ASK]


@njit(cache=True, inline="always")
def _record_step(ladder, book, bests, st, fl, rec, k):
    """Row ``k`` of ``rec``: exchange-side position and cash, the local top of book (a side that is
    empty keeps its last price, with size 0)."""
    n = ladder.shape[0]
    lb = st[S_LAST_B]
    la = st[S_LAST_A]
    rec[k, R_POS] = fl[A_POS]
    rec[k, R_CASH] = fl[A_CASH]
    rec[k, R_BID] = ladder[lb] if lb >= 0 else st[I_LO] - 1
    rec[k, R_ASK] = ladder[la] if la < n else st[I_HI] + 1
    rec[k, R_BIDQ] = book[0, bests[B_BID]] if bests[B_BID] >= 0 else 0.0
    rec[k, R_ASKQ] = book[1, bests[B_ASK]] if bests[B_ASK] < n else 0.0


@njit(cache=True)
def _push_request(st, rq, ts, kind, slot, oid):
    t = st[S_RQT]
    if t >= rq.shape[0]:
        h = st[S_RQH]
        if h == 0:
            return False
        for j in range(h, t):
            rq[j - h, :] = rq[j, :]
        st[S_RQH] = 0
        t = t - h
    rq[t, RQ_TS] = ts
    rq[t, RQ_KIND] = kind
    rq[t, RQ_SLOT] = slot
    rq[t, RQ_OID] = oid
    st[S_RQT] = t + 1
    return True


@njit(cache=True)
def _alloc_slot(st, o_i):
    """Lowest free slot (keeps the scanned part of the table, ``st[S_NSLOT]``, small)."""
    for s in range(o_i.shape[0]):
        stt = o_i[s, OI_STATUS]
        if (stt == FREE or stt == DONE) and s != st[S_CUR_B] and s != st[S_CUR_A]:
            if s + 1 > st[S_NSLOT]:
                st[S_NSLOT] = s + 1
            return s
    return -1


@njit(cache=True)
def apply_quotes(st, o_i, o_f, rq, t, bid_px, bid_qty, ask_px, ask_qty):
    """Turn the wanted quotes (prices in ticks; ``NO_PRICE`` or qty <= 0 = none) into cancel / new
    requests sent at ``t``.

    A side whose locally known order has the same price and original quantity is left alone (it
    keeps its queue position).  An order is known to be gone once its fill / cancel / rejection
    report has reached us (done time + response latency <= ``t``).
    """
    entry = st[I_ENTRY]
    resp = st[I_RESP]
    for sd in range(2):
        side = 1 if sd == 0 else -1
        ks = S_CUR_B if sd == 0 else S_CUR_A
        kid = S_CURID_B if sd == 0 else S_CURID_A
        px = bid_px if sd == 0 else ask_px
        qty = bid_qty if sd == 0 else ask_qty
        cs = st[ks]
        if cs >= 0:
            if o_i[cs, OI_ID] != st[kid] or (o_i[cs, OI_STATUS] == DONE and o_i[cs, OI_DONE_TS] + resp <= t):
                cs = -1
                st[ks] = -1
        want = px != NO_PRICE and qty > 0.0
        if cs >= 0 and want and o_i[cs, OI_PX] == px and o_f[cs, OF_QTY] == qty:
            continue
        if cs >= 0:
            if not _push_request(st, rq, t + entry, RQ_CANCEL, cs, st[kid]):
                return REQUEST_QUEUE_FULL
            st[ks] = -1
        if not want:
            continue
        st[S_SUB] += 1
        if px < st[I_LO] or px > st[I_HI]:
            st[S_REJ] += 1
            st[S_REJ_RANGE] += 1
            continue
        s = _alloc_slot(st, o_i)
        if s < 0:
            return ORDER_TABLE_FULL
        oid = st[S_NEXT_ID]
        st[S_NEXT_ID] = oid + 1
        o_i[s, OI_ID] = oid
        o_i[s, OI_SIDE] = side
        o_i[s, OI_PX] = px
        o_i[s, OI_STATUS] = PENDING
        o_i[s, OI_DONE_TS] = 0
        o_f[s, OF_QTY] = qty
        o_f[s, OF_LEAVES] = qty
        o_f[s, OF_FRONT] = 0.0
        o_f[s, OF_CUM] = 0.0
        if not _push_request(st, rq, t + entry, RQ_NEW, s, oid):
            return REQUEST_QUEUE_FULL
        st[ks] = s
        st[kid] = oid
    return OK


@njit(cache=True)
def send_quotes(st, o_i, o_f, rq, rec, k, t, bid_px, bid_qty, ask_px, ask_qty):
    """Record step ``k``'s quotes in ``rec`` and send them at ``t`` (:func:`apply_quotes`)."""
    if bid_px != NO_PRICE:
        rec[k, R_BIDQUOTE] = bid_px
    if ask_px != NO_PRICE:
        rec[k, R_ASKQUOTE] = ask_px
    return apply_quotes(st, o_i, o_f, rq, t, bid_px, bid_qty, ask_px, ask_qty)


@njit(cache=True, inline="always")
def advance_step(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec,
                 k, t):
    """Advance the exchange and the local view to decision time ``t`` and record step ``k``."""
    code = _advance_exchange(ts, kind, side, lv, qty, ladder, books[EXCH], bests[EXCH], st, fl, o_i, o_f, rq, f_i,
                             f_f, t)
    if code != OK:
        return code
    _advance_local(lts, kind, side, lv, qty, perm, books[LOCAL], bests[LOCAL], st, t)
    _record_step(ladder, books[LOCAL], bests[LOCAL], st, fl, rec, k)
    return OK


@njit(cache=True, inline="always")  # inlined into step_packed: a 26-argument call cost ~0.35 µs a step
def step(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec,
         k, t, kq, tq, bid_px, bid_qty, ask_px, ask_qty):
    """Entry point: one decision step of a Python policy: send step ``kq``'s quotes at its time ``tq``
    (none when ``kq < 0``), then :func:`advance_step` to step ``k`` at ``t``.

    Returns ``(code, best_bid, best_ask, bid_qty, ask_qty, local_position)``; after ``NEED_FILL_SPACE``
    grow the fill log and call again with ``kq = -1``.
    """
    if kq >= 0:
        code = send_quotes(st, o_i, o_f, rq, rec, kq, tq, bid_px, bid_qty, ask_px, ask_qty)
        if code != OK:
            return code, 0, 0, 0.0, 0.0, 0.0
    code = advance_step(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f,
                        rec, k, t)
    return code, np.int64(rec[k, R_BID]), np.int64(rec[k, R_ASK]), rec[k, R_BIDQ], rec[k, R_ASKQ], fl[A_LPOS]


#: Slots per state array in :func:`descriptor`: data address, then up to three dimensions.
DESC_WIDTH = 4


def descriptor(args: "State") -> np.ndarray:
    """``int64 [len(STATE_FIELDS) * DESC_WIDTH]``: each state array's data address and shape, the one
    argument of :func:`step_packed`.  Valid while the arrays of ``args`` live and are not replaced
    (``Exchange._pack`` rebuilds it with ``args``)."""
    out = np.zeros(len(STATE_FIELDS) * DESC_WIDTH, dtype=np.int64)
    for i, ((name, ty), a) in enumerate(zip(STATE_FIELDS, args)):
        if a.ndim != ty.ndim or a.dtype != np.dtype(str(ty.dtype)) or not a.flags.c_contiguous:
            raise TypeError(f"state array {name}: {a.dtype}[{a.ndim}d] (C-contiguous {a.flags.c_contiguous}) is not {ty}")
        out[i * DESC_WIDTH] = a.ctypes.data
        out[i * DESC_WIDTH + 1 : i * DESC_WIDTH + 1 + a.ndim] = a.shape
    return out


@intrinsic
def _pointer(typingctx, addr, dtype):
    """``addr`` (an integer) as a typed data pointer (for :func:`numba.carray`)."""
    if not isinstance(addr, types.Integer):
        return None
    ptr = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))

    return ptr(addr, dtype), codegen


@njit(cache=True, inline="always")
def _d1(desc, i, dtype):
    o = i * DESC_WIDTH
    return carray(_pointer(desc[o], dtype), (desc[o + 1],))


@njit(cache=True, inline="always")
def _d2(desc, i, dtype):
    o = i * DESC_WIDTH
    return carray(_pointer(desc[o], dtype), (desc[o + 1], desc[o + 2]))


@njit(cache=True)
def step_packed(desc, k, t, kq, tq, bid_px, bid_qty, ask_px, ask_qty):
    """:func:`step` with the replay state given as its :func:`descriptor` (the Python policy loop's
    entry point: one array to unbox per call instead of the 18 of the state, ~0.1 µs each).  The
    arrays are rebuilt as views of the same memory, in :data:`STATE_FIELDS` order; same results."""
    i64, i8, f64 = np.int64, np.int8, np.float64
    o = 8 * DESC_WIDTH
    books = carray(_pointer(desc[o], f64), (desc[o + 1], desc[o + 2], desc[o + 3]))
    return step(_d1(desc, 0, i64), _d1(desc, 1, i64), _d1(desc, 2, i8), _d1(desc, 3, i8), _d1(desc, 4, i64),
                _d1(desc, 5, f64), _d1(desc, 6, i64), _d1(desc, 7, i64), books, _d2(desc, 9, i64),
                _d1(desc, 10, i64), _d1(desc, 11, f64), _d2(desc, 12, i64), _d2(desc, 13, f64), _d2(desc, 14, i64),
                _d2(desc, 15, i64), _d2(desc, 16, f64), _d2(desc, 17, f64), k, t, kq, tq, bid_px, bid_qty, ask_px, ask_qty)


#: :func:`step_packed`'s argument types: the descriptor, then the Python loop's ints and floats.
STEP_PACKED_SIGNATURE = (types.int64[::1], types.int64, types.int64, types.int64, types.int64, types.int64,
                         types.float64, types.int64, types.float64)


@functools.cache
def step_packed_entry():
    """:func:`step_packed` for :data:`STEP_PACKED_SIGNATURE` (from numba's cache) as its compiled entry
    point: a call skips the dispatcher's type resolution (~0.1 µs of a Python step) and converts its
    arguments as ``int()`` / ``float()`` do (numpy scalars work, a price of 100.7 is tick 100, a
    string that is no number raises ``ValueError``)."""
    return step_packed.compile(STEP_PACKED_SIGNATURE)


@njit(cache=True)
def advance(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec, until):
    """Entry point: advance the exchange only (episode boundaries); see :func:`_advance_exchange`."""
    return _advance_exchange(ts, kind, side, lv, qty, ladder, books[EXCH], bests[EXCH], st, fl, o_i, o_f, rq, f_i,
                             f_f, until)


@njit(cache=True)
def catch_up_local(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec,
                   until):
    """Entry point: apply the events with ``local_ts <= until`` to the local book between episodes (a
    streamed replay's catch-up, :mod:`cmm_bt.engine.stream`), leaving the last seen best prices to
    the next decision step as an uncut replay would."""
    last_b, last_a = st[S_LAST_B], st[S_LAST_A]
    _advance_local(lts, kind, side, lv, qty, perm, books[LOCAL], bests[LOCAL], st, until)
    st[S_LAST_B] = last_b
    st[S_LAST_A] = last_a
    return OK


@njit(cache=True)
def quote(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec,
          k, t, bid_px, bid_qty, ask_px, ask_qty):
    """Entry point: :func:`send_quotes` (the last step's quotes of an episode)."""
    return send_quotes(st, o_i, o_f, rq, rec, k, t, bid_px, bid_qty, ask_px, ask_qty)


@njit(cache=True)
def end_episode(ts, lts, kind, side, lv, qty, perm, ladder, books, bests, st, fl, o_i, o_f, rq, f_i, f_f, rec,
                t, flatten):
    """Entry point: :func:`_close_episode` on the exchange book."""
    return _close_episode(st, fl, ladder, bests[EXCH], o_i, o_f, rq, f_i, f_f, t, flatten)


@njit(cache=True)
def _close_episode(st, fl, ladder, bests, o_i, o_f, rq, f_i, f_f, ts, flatten):
    """Close the episode at exchange time ``ts``: drop requests in flight, cancel every working order and,
    if ``flatten``, close the inventory with a taker fill at the touch.  Returns False when the book had
    no price to flatten at.  ``bests`` is the exchange book's."""
    for h in range(st[S_RQH], st[S_RQT]):
        s = rq[h, RQ_SLOT]
        if rq[h, RQ_KIND] == RQ_NEW and o_i[s, OI_ID] == rq[h, RQ_OID] and o_i[s, OI_STATUS] == PENDING:
            o_i[s, OI_STATUS] = DONE
            o_i[s, OI_DONE_TS] = ts
            st[S_CXL] += 1
    st[S_RQH] = 0
    st[S_RQT] = 0
    for s in range(st[S_NSLOT]):
        if o_i[s, OI_STATUS] == LIVE:
            o_i[s, OI_STATUS] = DONE
            o_i[s, OI_DONE_TS] = ts
            st[S_CXL] += 1
    st[S_CUR_B] = -1
    st[S_CUR_A] = -1
    pos = fl[A_POS]
    if not flatten or abs(pos) <= _EPS:
        return True
    n = ladder.shape[0]
    side = -1 if pos > 0 else 1
    bb, ba = bests[B_BID], bests[B_ASK]
    if side == -1:
        j = bb if bb >= 0 else (ba if ba < n else -1)
    else:
        j = ba if ba < n else (bb if bb >= 0 else -1)
    if j < 0:
        return False
    oid = st[S_NEXT_ID]
    st[S_NEXT_ID] = oid + 1
    st[S_SUB] += 1
    st[S_FILLED] += 1
    st[S_TAKER_ORDERS] += 1
    _record_fill(st, fl, ladder, bests, f_i, f_f, oid, side, ladder[j], abs(pos), False, ts)
    return True


def _grow(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros_like(a)])


class Exchange:
    """Owns the kernel state of one replay, grows the fill log when needed and turns error codes into
    exceptions.  ``args`` is the :class:`State` every entry point takes first (packed by field name)."""

    #: Initial sizes of the order table, the request queue and the fill log (which grows).
    order_capacity, request_capacity, fill_capacity = 256, 4096, 4096

    def __init__(self, events, ladder, *, lo, hi, instrument, config, steps):
        n = ladder.shape[0]
        self.ts, self.lts, self.kind, self.side, self.lv, self.qty, self.perm = events
        self.ladder = ladder
        self.books = np.zeros((2, 2, n))
        self.bests = np.stack([new_bests(n), new_bests(n)])
        self.st = np.zeros(N_ST, dtype=np.int64)
        self.st[[S_NEXT_ID, S_CUR_B, S_CURID_B, S_CUR_A, S_CURID_A, S_LAST_B, S_LAST_A]] = [1, -1, -1, -1, -1, -1, n]
        self.st[I_LO:] = [lo, hi, queue_model_code(config.queue_model), int(config.partial_fills), int(config.post_only),
                          int(round(config.entry_latency_us * 1000)), int(round(config.response_latency_us * 1000))]
        self.fl = np.zeros(N_FL)
        lot_size = instrument.lot_size
        self.fl[P_TV:] = [instrument.value_scale, config.maker_fee, config.taker_fee, config.position_limit,
                          lot_size if lot_size > 0 else 1.0, config.queue_exponent,
                          getattr(config, "maker_fee_per_contract", 0.0), getattr(config, "taker_fee_per_contract", 0.0),
                          1.0 if instrument.inverse else 0.0]
        self.instrument = instrument
        self.o_i = np.zeros((self.order_capacity, N_OI), dtype=np.int64)
        self.o_f = np.zeros((self.order_capacity, N_OF))
        self.rq = np.zeros((self.request_capacity, N_RQ), dtype=np.int64)
        self.f_i = np.zeros((self.fill_capacity, N_FI), dtype=np.int64)
        self.f_f = np.zeros((self.fill_capacity, N_FF))
        self.rec = np.zeros((steps, N_REC))
        self.rec[:, R_BIDQUOTE:] = np.nan
        self._pack()

    def _pack(self) -> None:
        self.args = State(**{name: getattr(self, name) for name in State._fields})
        self.desc = descriptor(self.args)  # the same arrays for step_packed

    def grow_fills(self) -> None:
        self.f_i, self.f_f = _grow(self.f_i), _grow(self.f_f)
        self._pack()

    def check(self, code: int) -> bool:
        """True when the fill log had to grow (call the kernel again); raise on a full table or queue."""
        if code == ORDER_TABLE_FULL:
            raise RuntimeError(f"order table full ({self.o_i.shape[0]} orders in flight or resting)")
        if code == REQUEST_QUEUE_FULL:
            raise RuntimeError(f"request queue full ({self.rq.shape[0]} requests in flight)")
        if code == NEED_FILL_SPACE:
            self.grow_fills()
        return code == NEED_FILL_SPACE

    def step(self, k: int, t: int) -> tuple:
        """:func:`step` without quotes to send, retried until the fill log is large enough."""
        while True:
            r = step(*self.args, k, t, -1, 0, NO_PRICE, 0.0, NO_PRICE, 0.0)
            if not self.check(r[0]):
                return r

    def advance(self, until: int) -> None:
        while self.check(advance(*self.args, until)):
            pass

    def catch_up(self, until: int) -> None:
        """Market events up to ``until`` on both books, no order working (:class:`cmm_bt.engine.stream.Consumer`)."""
        self.advance(until)
        catch_up_local(*self.args, until)

    def pointers(self) -> tuple[int, int]:
        return int(self.st[S_EV]), int(self.st[S_LEV])

    def rebase(self, events, exchange: int, local: int) -> None:
        """Continue on a new event buffer (:class:`cmm_bt.engine.stream.EventStream`)."""
        self.ts, self.lts, self.kind, self.side, self.lv, self.qty, self.perm = events
        self.st[S_EV], self.st[S_LEV] = exchange, local
        self._pack()

    def quote(self, k: int, t: int, bid_px: int, bid_qty: float, ask_px: int, ask_qty: float) -> None:
        self.check(quote(*self.args, k, t, bid_px, bid_qty, ask_px, ask_qty))

    def end_episode(self, ts: int, flatten: bool) -> bool:
        if self.st[S_NFILL] + 2 >= self.f_i.shape[0]:
            self.grow_fills()
        return bool(end_episode(*self.args, ts, flatten))

    def exchange_mid(self) -> float:
        bb, ba = int(self.bests[EXCH, B_BID]), int(self.bests[EXCH, B_ASK])
        if bb < 0 or ba >= self.ladder.shape[0]:
            return float("nan")
        return 0.5 * (int(self.ladder[bb]) + int(self.ladder[ba]))

    def equity(self) -> float:
        """Cash plus the position marked at the exchange mid."""
        pos = self.fl[A_POS]
        return self.fl[A_CASH] + (self.instrument.value(pos, self.exchange_mid()) if pos else 0.0)

    @property
    def n_fills(self) -> int:
        return int(self.st[S_NFILL])
