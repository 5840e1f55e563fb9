"""The compiled exchange simulator: matching of the agent's orders against a replayed L2 book.

Everything here is ``numba.njit``; Python calls it once per decision step (:func:`advance`, then
:func:`apply_quotes`), never per market event.  :class:`Exchange` owns the state arrays.

State layout (all plain numpy arrays so numba can cache the compiled code):

* ``st`` int64 scalars (``S_*``), ``acct`` float64 money/position (``A_*``), ``prm`` float64 and
  ``iprm`` int64 parameters (``P_*``, ``I_*``);
* ``book`` float64[2, n] exchange-side book and ``bests`` int64[2] (see :mod:`cmm_bt.engine.book`);
* the order table ``o_i`` int64[C, 5] / ``o_f`` float64[C, 4] (``OI_*``, ``OF_*``);
* the FIFO of requests in flight ``rq`` int64[R, 4] (arrival time, kind, slot, order id);
* the fill log ``f_i`` int64[F, 6] / ``f_f`` float64[F, 3] (``FI_*``, ``FF_*``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cmm_bt.data.schema import BID, BOOK, CLEAR, TRADE
from cmm_bt.engine.book import book_clear, book_set, new_bests, scan_down, scan_up

# st
S_EV, S_RQH, S_RQT, S_NFILL, S_NSLOT, S_NEXT_ID, S_SUB, S_CXL, S_REJ, S_FILLED, S_EVENTS = range(11)
S_EPISODE, S_KNOWN, S_CUR_B, S_CURID_B, S_CUR_A, S_CURID_A, S_RR = range(11, 18)
S_REJ_POST, S_REJ_LIMIT, S_REJ_RANGE, S_TAKER_ORDERS = range(18, 22)
N_ST = 22
# acct
A_POS, A_CASH, A_FEES, A_VOL, A_LPOS = range(5)
# prm / iprm
P_TV, P_MFEE, P_TFEE, P_LIMIT, P_LOT, P_QEXP = range(6)
I_OFFSET, I_N, I_QMODEL, I_PARTIAL, I_POST, I_ENTRY, I_RESP = range(7)
# orders
OI_ID, OI_SIDE, OI_PX, OI_STATUS, OI_DONE_TS = range(5)
OF_QTY, OF_LEAVES, OF_FRONT, OF_CUM = range(4)
FREE, PENDING, LIVE, DONE = 0, 1, 2, 3
# requests
RQ_NEW, RQ_CANCEL = 1, 2
# fills
FI_TS, FI_OID, FI_SIDE, FI_PX, FI_MAKER, FI_EPISODE = range(6)
FF_QTY, FF_FEE, FF_MID = range(3)

NO_PRICE = np.iinfo(np.int64).min
_MAX_TS = np.iinfo(np.int64).max
_EPS = 1e-9
#: Most price levels one crossing order walks; any remainder rests at its limit price.
MAX_WALK = 64
#: Codes returned by :func:`advance` / :func:`apply_quotes`.
OK, NEED_FILL_SPACE, ORDER_TABLE_FULL, REQUEST_QUEUE_FULL = 0, 1, 2, 3


@njit(cache=True)
def _record_fill(st, acct, prm, iprm, bests, f_i, f_f, oid, side, px, qty, maker, ts):
    n = iprm[I_N]
    price = iprm[I_OFFSET] + px
    notional = qty * price * prm[P_TV]
    fee = (prm[P_MFEE] if maker else prm[P_TFEE]) * abs(notional)
    acct[A_POS] += side * qty
    acct[A_CASH] -= side * notional + fee
    acct[A_FEES] += fee
    acct[A_VOL] += qty
    k = st[S_NFILL]
    f_i[k, FI_TS] = ts
    f_i[k, FI_OID] = oid
    f_i[k, FI_SIDE] = side
    f_i[k, FI_PX] = price
    f_i[k, FI_MAKER] = 1 if maker else 0
    f_i[k, FI_EPISODE] = st[S_EPISODE]
    f_f[k, FF_QTY] = qty
    f_f[k, FF_FEE] = fee
    if bests[0] >= 0 and bests[1] < n:
        f_f[k, FF_MID] = iprm[I_OFFSET] + 0.5 * (bests[0] + bests[1])
    else:
        f_f[k, FF_MID] = np.nan
    st[S_NFILL] = k + 1


@njit(cache=True)
def _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, slot, qty, px, maker, ts):
    _record_fill(st, acct, prm, iprm, bests, f_i, f_f, o_i[slot, OI_ID], o_i[slot, OI_SIDE], px, qty, maker, ts)
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


@njit(cache=True, inline="always")
def _queue_depth(o_f, slot, prev, new, qmodel, qexp):
    """Level quantity at our price went ``prev -> new`` (hftbacktest queue models' ``depth``)."""
    front = o_f[slot, OF_FRONT]
    if qmodel == 0:
        o_f[slot, OF_FRONT] = min(front, new)
        return
    chg = prev - new - o_f[slot, OF_CUM]
    o_f[slot, OF_CUM] = 0.0
    if chg < 0.0:
        o_f[slot, OF_FRONT] = min(front, new)
        return
    fr = max(front, 0.0)
    back = max(prev - front, 0.0)
    if qmodel == 1:
        fb = back**qexp
        ff = fr**qexp
    else:
        fb = math.log1p(back)
        ff = math.log1p(fr)
    den = fb + ff
    prob = fb / den if den > 0.0 else 1.0  # probability that the decrease is behind us
    est = front - (1.0 - prob) * chg + min(back - prob * chg, 0.0)
    o_f[slot, OF_FRONT] = min(est, new)


@njit(cache=True, inline="always")
def _on_trade(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, aggr, p, q, ts):
    nslot = st[S_NSLOT]
    partial = iprm[I_PARTIAL] != 0
    lot = prm[P_LOT]
    for s in range(nslot):
        if o_i[s, OI_STATUS] != LIVE or o_i[s, OI_SIDE] == aggr:
            continue
        px = o_i[s, OI_PX]
        side = o_i[s, OI_SIDE]
        through = (px < p) if side != BID else (px > p)
        if through:
            _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, s, o_f[s, OF_LEAVES], px, True, ts)
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
                _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, s, fq, px, True, ts)


@njit(cache=True)
def _check_crossed(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, ts):
    """Fill resting orders that the opposite best quote reached (book depletion / crossing)."""
    n = iprm[I_N]
    for s in range(st[S_NSLOT]):
        if o_i[s, OI_STATUS] != LIVE:
            continue
        px = o_i[s, OI_PX]
        if o_i[s, OI_SIDE] == BID:
            hit = bests[1] < n and px >= bests[1]
        else:
            hit = bests[0] >= 0 and px <= bests[0]
        if hit:
            _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, s, o_f[s, OF_LEAVES], px, True, ts)


@njit(cache=True, inline="always")
def _on_book(st, acct, prm, iprm, book, bests, o_i, o_f, f_i, f_f, side, p, q, ts):
    b0 = bests[0]
    a0 = bests[1]
    row = 0 if side == BID else 1
    prev = book_set(book, bests, row, p, q)
    qmodel = iprm[I_QMODEL]
    qexp = prm[P_QEXP]
    for s in range(st[S_NSLOT]):
        if o_i[s, OI_STATUS] == LIVE and o_i[s, OI_SIDE] == side and o_i[s, OI_PX] == p:
            _queue_depth(o_f, s, prev, q, qmodel, qexp)
    if bests[0] != b0 or bests[1] != a0:
        _check_crossed(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, ts)


@njit(cache=True)
def _on_new(st, acct, prm, iprm, book, bests, o_i, o_f, f_i, f_f, s, ts):
    n = iprm[I_N]
    side = o_i[s, OI_SIDE]
    px = o_i[s, OI_PX]
    qty = o_f[s, OF_QTY]
    # position limit: inventory + every open same-side order + this one
    open_q = 0.0
    for k in range(st[S_NSLOT]):
        if k != s and o_i[k, OI_STATUS] == LIVE and o_i[k, OI_SIDE] == side:
            open_q += o_f[k, OF_LEAVES]
    if side * acct[A_POS] + open_q + qty > prm[P_LIMIT] + _EPS:
        o_i[s, OI_STATUS] = DONE
        o_i[s, OI_DONE_TS] = ts
        st[S_REJ] += 1
        st[S_REJ_LIMIT] += 1
        return
    if side == BID:
        cross = bests[1] < n and px >= bests[1]
    else:
        cross = bests[0] >= 0 and px <= bests[0]
    if cross:
        if iprm[I_POST] != 0:
            o_i[s, OI_STATUS] = DONE
            o_i[s, OI_DONE_TS] = ts
            st[S_REJ] += 1
            st[S_REJ_POST] += 1
            return
        st[S_TAKER_ORDERS] += 1
        o_i[s, OI_STATUS] = LIVE
        walked = 0
        if side == BID:
            j = bests[1]
            while o_i[s, OI_STATUS] == LIVE and j < n and j <= px and walked < MAX_WALK:
                fq = min(o_f[s, OF_LEAVES], book[1, j])
                _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, s, fq, j, False, ts)
                j = scan_up(book[1], j + 1, bests[5], n)
                walked += 1
        else:
            j = bests[0]
            while o_i[s, OI_STATUS] == LIVE and j >= 0 and j >= px and walked < MAX_WALK:
                fq = min(o_f[s, OF_LEAVES], book[0, j])
                _fill_order(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, s, fq, j, False, ts)
                j = scan_down(book[0], j - 1, bests[2])
                walked += 1
        o_f[s, OF_FRONT] = 0.0  # any remainder rests ahead of the (stale) level at its price
        o_f[s, OF_CUM] = 0.0
        return
    o_i[s, OI_STATUS] = LIVE
    o_f[s, OF_FRONT] = book[0 if side == BID else 1, px]
    o_f[s, OF_CUM] = 0.0


@njit(cache=True)
def advance(ev_ts, ev_kind, ev_side, ev_px, ev_qty, book, bests, st, acct, prm, iprm, o_i, o_f, rq, f_i, f_f, until):
    """Process market events (``exch_ts <= until``) and request arrivals (``<= until``) in time order.

    At equal timestamps market events go first.  Afterwards fills with ``ts + response latency <=
    until`` are added to the locally known position.  Returns ``OK`` or ``NEED_FILL_SPACE`` (grow
    the fill log and call again; nothing is lost).
    """
    ne = ev_ts.shape[0]
    cap = f_i.shape[0]
    i = st[S_EV]
    n_done = 0
    code = OK
    while True:
        if st[S_NFILL] + st[S_NSLOT] + MAX_WALK + 2 >= cap:
            code = NEED_FILL_SPACE
            break
        h = st[S_RQH]
        te = ev_ts[i] if i < ne else _MAX_TS
        tr = rq[h, 0] if h < st[S_RQT] else _MAX_TS
        if te <= tr:
            if te > until:
                break
            k = ev_kind[i]
            if k == BOOK:
                _on_book(st, acct, prm, iprm, book, bests, o_i, o_f, f_i, f_f, ev_side[i], ev_px[i], ev_qty[i], te)
            elif k == TRADE:
                if st[S_NSLOT] > 0:
                    _on_trade(st, acct, prm, iprm, bests, o_i, o_f, f_i, f_f, ev_side[i], ev_px[i], ev_qty[i], te)
            elif k == CLEAR:
                book_clear(book, bests, 0 if ev_side[i] == BID else 1)
            i += 1
            n_done += 1
        else:
            if tr > until:
                break
            s = rq[h, 2]
            if o_i[s, OI_ID] == rq[h, 3]:
                if rq[h, 1] == RQ_NEW:
                    if o_i[s, OI_STATUS] == PENDING:
                        _on_new(st, acct, prm, iprm, book, bests, o_i, o_f, f_i, f_f, s, tr)
                elif o_i[s, OI_STATUS] == LIVE:
                    o_i[s, OI_STATUS] = DONE
                    o_i[s, OI_DONE_TS] = tr
                    st[S_CXL] += 1
            st[S_RQH] = h + 1
    st[S_EV] = i
    st[S_EVENTS] += n_done
    if code != OK:
        return code
    if st[S_RQH] == st[S_RQT]:
        st[S_RQH] = 0
        st[S_RQT] = 0
    resp = iprm[I_RESP]
    while st[S_KNOWN] < st[S_NFILL] and f_i[st[S_KNOWN], FI_TS] + resp <= until:
        k = st[S_KNOWN]
        acct[A_LPOS] += f_i[k, FI_SIDE] * f_f[k, FF_QTY]
        st[S_KNOWN] = k + 1
    return OK


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
    rq[t, 0] = ts
    rq[t, 1] = kind
    rq[t, 2] = slot
    rq[t, 3] = oid
    st[S_RQT] = t + 1
    return True


@njit(cache=True)
def _alloc_slot(st, o_i):
    """Lowest free slot (keeps the scanned part of the table, ``st[S_NSLOT]``, small)."""
    c = o_i.shape[0]
    for s in range(c):
        stt = o_i[s, OI_STATUS]
        if (stt == FREE or stt == DONE) and s != st[S_CUR_B] and s != st[S_CUR_A]:
            if s + 1 > st[S_NSLOT]:
                st[S_NSLOT] = s + 1
            return s
    return -1


@njit(cache=True)
def apply_quotes(st, iprm, o_i, o_f, rq, t, bid_px, bid_qty, ask_px, ask_qty):
    """Turn the wanted quotes (``NO_PRICE`` or qty <= 0 = none) into cancel / new requests sent at ``t``.

    A side whose locally known order has the same price and original quantity is left alone (it
    keeps its queue position).  An order is known to be gone once its fill / cancel / rejection
    report has reached us (done time + response latency <= ``t``).
    """
    entry = iprm[I_ENTRY]
    resp = iprm[I_RESP]
    n = iprm[I_N]
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
        if px < 0 or px >= n:
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
def end_episode(st, acct, prm, iprm, bests, o_i, o_f, rq, f_i, f_f, ts, flatten):
    """Close the episode at exchange time ``ts``: drop requests in flight, cancel every working order and,
    if ``flatten``, close the inventory with a taker fill at the touch.  Returns False when the book had
    no price to flatten at."""
    for h in range(st[S_RQH], st[S_RQT]):
        s = rq[h, 2]
        if rq[h, 1] == RQ_NEW and o_i[s, OI_ID] == rq[h, 3] and o_i[s, OI_STATUS] == PENDING:
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
    pos = acct[A_POS]
    if not flatten or abs(pos) <= _EPS:
        return True
    n = iprm[I_N]
    side = -1 if pos > 0 else 1
    if side == -1:
        px = bests[0] if bests[0] >= 0 else (bests[1] if bests[1] < n else -1)
    else:
        px = bests[1] if bests[1] < n else (bests[0] if bests[0] >= 0 else -1)
    if px < 0:
        return False
    oid = st[S_NEXT_ID]
    st[S_NEXT_ID] = oid + 1
    st[S_SUB] += 1
    st[S_FILLED] += 1
    st[S_TAKER_ORDERS] += 1
    _record_fill(st, acct, prm, iprm, bests, f_i, f_f, oid, side, px, abs(pos), False, ts)
    return True


class Exchange:
    """Owns the kernel state for one replay and grows the fill log when needed."""

    def __init__(self, ev_ts, ev_kind, ev_side, ev_px, ev_qty, *, offset, n, tick_value, lot_size, config,
                 order_capacity=256, request_capacity=4096, fill_capacity=4096):
        from cmm_bt.engine.config import QUEUE_MODELS

        self.ev = (ev_ts, ev_kind, ev_side, ev_px, ev_qty)
        self.book = np.zeros((2, n))
        self.bests = new_bests(n)
        self.st = np.zeros(N_ST, dtype=np.int64)
        self.st[S_NEXT_ID] = 1
        self.st[[S_CUR_B, S_CURID_B, S_CUR_A, S_CURID_A]] = -1
        self.acct = np.zeros(5)
        self.prm = np.array([tick_value, config.maker_fee, config.taker_fee, config.position_limit,
                             lot_size if lot_size > 0 else 1.0, config.queue_exponent], dtype=np.float64)
        self.iprm = np.array([offset, n, QUEUE_MODELS[config.queue_model], int(config.partial_fills),
                              int(config.post_only), int(round(config.entry_latency_us * 1000)),
                              int(round(config.response_latency_us * 1000))], dtype=np.int64)
        self.o_i = np.zeros((order_capacity, 5), dtype=np.int64)
        self.o_f = np.zeros((order_capacity, 4))
        self.rq = np.zeros((request_capacity, 4), dtype=np.int64)
        self.f_i = np.zeros((fill_capacity, 6), dtype=np.int64)
        self.f_f = np.zeros((fill_capacity, 3))

    def advance(self, until: int) -> None:
        while advance(*self.ev, self.book, self.bests, self.st, self.acct, self.prm, self.iprm, self.o_i,
                      self.o_f, self.rq, self.f_i, self.f_f, until) == NEED_FILL_SPACE:
            self.f_i = np.concatenate([self.f_i, np.zeros_like(self.f_i)])
            self.f_f = np.concatenate([self.f_f, np.zeros_like(self.f_f)])

    def _room(self) -> None:
        if self.st[S_NFILL] + 2 >= self.f_i.shape[0]:
            self.f_i = np.concatenate([self.f_i, np.zeros_like(self.f_i)])
            self.f_f = np.concatenate([self.f_f, np.zeros_like(self.f_f)])

    def quote(self, t: int, bid_px: int, bid_qty: float, ask_px: int, ask_qty: float) -> None:
        rc = apply_quotes(self.st, self.iprm, self.o_i, self.o_f, self.rq, t, bid_px, bid_qty, ask_px, ask_qty)
        if rc == ORDER_TABLE_FULL:
            raise RuntimeError(f"order table full ({self.o_i.shape[0]} orders in flight or resting)")
        if rc == REQUEST_QUEUE_FULL:
            raise RuntimeError(f"request queue full ({self.rq.shape[0]} requests in flight)")

    def end_episode(self, ts: int, flatten: bool) -> bool:
        self._room()
        return bool(end_episode(self.st, self.acct, self.prm, self.iprm, self.bests, self.o_i, self.o_f, self.rq,
                                self.f_i, self.f_f, ts, flatten))

    def exchange_mid(self) -> float:
        bb, ba = int(self.bests[0]), int(self.bests[1])
        if bb < 0 or ba >= self.book.shape[1]:
            return float("nan")
        return self.iprm[I_OFFSET] + 0.5 * (bb + ba)

    @property
    def n_fills(self) -> int:
        return int(self.st[S_NFILL])
