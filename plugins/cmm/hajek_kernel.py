"""The Hájek-MoE mixture of every task in numba, shared by the batch-1 CMM paths
(:mod:`~cmm_bt_plugins.cmm.fast` and :mod:`~cmm_bt_plugins.cmm.incremental`); mirrors
``moe.hajek_weights`` (float64, per-sample median bandwidth when none is fitted) and computes its
exponentials without libm calls (:func:`exp_neg`)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so k·ln2 is exact (fdlibm)
_LN2_LO = 1.90821492927058770002e-10
_POW2 = 2.0 ** np.arange(-1022, 1, dtype=np.float64)  # 2^k, k = -1022 .. 0


@njit(cache=True, inline="always", error_model="numpy")
def _exp_neg(x):  # pragma: no cover - compiled
    """``exp(x)`` for ``x <= 0`` (float64) without a libm call: ``2^k · e^r`` with ``|r| <= ln2 / 2``
    and the degree-13 Taylor polynomial (relative error < 1e-15); 0 below -700."""
    if x < -700.0:
        return 0.0
    k = math.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _POW2[int(k) + 1022]


@njit(cache=True)
def exp_neg(x):  # pragma: no cover - compiled
    """:func:`_exp_neg` over a float64 array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _exp_neg(x[i])
    return out


@njit(cache=True, inline="always")
def hajek_mix(emb, preds, experts, n_experts, bandwidth, temp, d2, pairs, off, y):  # pragma: no cover - compiled
    """ŷ of every task -> ``y [T]``.

    ``emb [K, CD]`` the students' common-space embeddings, ``preds [K, T]`` their predictions (NaN:
    none), ``experts [T, KMAX]`` / ``n_experts [T]`` each task's experts, ``bandwidth [T]`` (NaN:
    per-sample median of the squared distances), ``temp`` the temperature; ``d2 [K, K]``,
    ``pairs [>= KMAX (KMAX - 1) / 2]`` and ``off [KMAX]`` are scratch."""
    K, CD = emb.shape
    T = n_experts.shape[0]
    for i in range(K):
        for j in range(K):
            acc = 0.0
            for q in range(CD):
                dq = emb[i, q] - emb[j, q]
                acc += dq * dq
            d2[i, j] = acc
    for t in range(T):
        nx = n_experts[t]
        if nx == 0:
            y[t] = np.nan
            continue
        ex = experts[t]
        if nx == 1:
            y[t] = preds[ex[0], t]
            continue
        h = bandwidth[t]
        if np.isnan(h):  # per-sample median of the squared distances over pairs i < j
            p = 0
            for i in range(nx):
                for j in range(i + 1, nx):
                    v = d2[ex[i], ex[j]]
                    k = p  # insertion sort (a handful of pairs)
                    while k > 0 and pairs[k - 1] > v:
                        pairs[k] = pairs[k - 1]
                        k -= 1
                    pairs[k] = v
                    p += 1
            mid = p // 2
            med = pairs[mid] if p % 2 == 1 else 0.5 * (pairs[mid - 1] + pairs[mid])
            h = max(med, 1e-12)
        # exp(-d²/h) is symmetric in i, j: each pair's exponential once, added to both rows; every
        # off[i] still sums its j = 0 .. nx - 1 in order, so the sums are the same to the bit
        for i in range(nx):
            off[i] = 0.0
        for i in range(nx):
            for j in range(i + 1, nx):
                e = _exp_neg(d2[ex[i], ex[j]] / -h)
                off[i] += e
                off[j] += e
        total = 0.0
        for i in range(nx):
            total += off[i]
        U = total / (nx * (nx - 1))
        cmax = -np.inf
        for i in range(nx):
            v = (off[i] / (nx - 1) - U) / temp
            off[i] = v
            cmax = max(cmax, v)
        den = 0.0
        num = 0.0
        for i in range(nx):
            e = _exp_neg(off[i] - cmax)
            den += e
            num += e * preds[ex[i], t]
        y[t] = num / den
