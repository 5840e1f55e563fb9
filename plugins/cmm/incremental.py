"""Incremental batch-1 CMM decisions: one compiled call per replay step, the window kept as a ring.

:class:`~cmm_bt_plugins.cmm.fast.FastCMM` recomputes a whole window per decision (every student
compresses and GELUs all ``W`` steps).  Consecutive decision steps share ``W − 1`` of those steps,
so :class:`IncrementalCMM` keeps, per student, a ring buffer of the compressed + GELU'd step vectors
``g_t = GELU(C x_t + c)`` and each decision

1. standardises the new step row (float32, exactly as ``StudentSet.standardise``: NaN / inf -> 0),
2. compresses it for every student and writes ``g_t`` over the ring's oldest slot,
3. runs the first MLP layer on the ring read in time order (oldest first, as ``Flatten`` lays out
   ``[W, c]``), the second layer, the heads and the common-space embedding (the projector composed
   with the common-space map once, in float64, when the weights are packed),
4. mixes every task with the Hájek-MoE (per-sample median or fitted bandwidth, float64),

all inside **one** ``numba.njit`` call whose arguments are the step array, its row and four packed
buffers (float32 weights, float64 scalings / mixer / output, int64 layout / ring position, float32
ring + scratch), so the per-call unboxing stays small.  Weights are float32 (≈ 0.6 MB for the
default 8 students, within L2), as in the torch forward; GELU uses a rational ``erf`` approximation
(|error| < 1e-6, like torch's own vectorised erf) that LLVM vectorises.

Supported: students that are all :class:`~cmm_bt_plugins.cmm.nets.MLPBackbone` of one shape, mixed
by :class:`~cmm_bt_plugins.cmm.moe.HajekMoE` (the default CMM); :func:`supports` says so, and
:func:`cmm_bt_plugins.cmm.stages.decision_latency` falls back to ``FastCMM`` otherwise.  Same
predictions as ``StudentSet.predict`` + ``stages.mix_experts`` on the same windows within float32
tolerance (``tests/plugins/cmm/test_cmm_incremental.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from numba import njit, types

from cmm_bt_plugins.cmm.hajek_kernel import hajek_mix

if TYPE_CHECKING:
    from cmm_bt_plugins.cmm.ofdd import StudentSet

# wi (int64) layout: dimensions, the ring position, the sections' offsets in wf and sf, then tables
I_K, I_F, I_W, I_C, I_H, I_D, I_M, I_CD, I_T, I_KMAX, I_HEAD = range(11)
#: float32 weight sections of ``wf``, in order; each starts on a 64-byte line (:data:`ALIGN`)
WF_SECTIONS = ("mean", "std", "Cw", "cb", "W1", "b1", "W2", "b2", "Wz", "bz")
#: float32 state sections of ``sf``: the rings, then the scratch vectors
SF_SECTIONS = ("ring", "xs", "hid", "z", "out")
I_WF = 11  # offsets of WF_SECTIONS in wf
I_SF = I_WF + len(WF_SECTIONS)  # offsets of SF_SECTIONS in sf
I_OUT_TASK = I_SF + len(SF_SECTIONS)  # [K, M] task of each head output (-1: none), then experts [T, KMAX], n_experts [T]
#: float32 elements per 64-byte cache line: a vector load that crosses a line costs two (the first
#: layer streams 512 KB of weights per decision; unaligned sections made it ~1.4x slower)
ALIGN = 16
# wd (float64) layout
D_TEMP = 0
D_OUT = 1  # ŷ [T], then bandwidth [T] (NaN = per-sample median), scale [T], offset [T], preds [K, T], emb [K, CD], d2 [K, K], pairs, off,
# then the embedding map E [K, CD, D] and its bias [K, CD]

_SQRT1_2 = np.float32(0.7071067811865476)
# erf(x) ~ x P(x²) / Q(x²) on [-4, 4] (Eigen's float approximation); |error| < 1e-6 there, and
# |erf(4)| = 1 - 1.5e-8, so clamping outside is exact in float32
_A = tuple(np.float32(v) for v in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                    -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                    -1.60960333262415e-02))
_B = tuple(np.float32(v) for v in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                    -7.37332916720468e-03, -1.42647390514189e-02))
A0, A1, A2, A3, A4, A5, A6 = _A
B0, B1, B2, B3, B4 = _B
_F4 = np.float32(4.0)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
#: reassociation (vectorised dot products) and FMA contraction only: no nnan / ninf, the
#: standardisation's NaN / inf test must stay
_FM = {"reassoc", "contract"}


@njit(cache=True, inline="always", error_model="numpy")
def _gelu32(v):  # pragma: no cover - compiled
    """Exact-form GELU ``0.5 v (1 + erf(v / √2))`` in float32 with the rational erf."""
    x = min(max(v * _SQRT1_2, -_F4), _F4)
    x2 = x * x
    p = x2 * A0 + A1
    p = x2 * p + A2
    p = x2 * p + A3
    p = x2 * p + A4
    p = x2 * p + A5
    p = x2 * p + A6
    p = x * p
    q = x2 * B0 + B1
    q = x2 * q + B2
    q = x2 * q + B3
    q = x2 * q + B4
    return _HALF * v * (_ONE + p / q)


@njit(cache=True, inline="always", error_model="numpy")
def _gelu_inplace(v):  # pragma: no cover - compiled
    """GELU over a float32 array (a separate loop, so LLVM vectorises it)."""
    for i in range(v.shape[0]):
        v[i] = _gelu32(v[i])


@njit(cache=True, inline="always", fastmath=_FM, error_model="numpy")
def _affine(a, A, b, out):  # pragma: no cover - compiled
    """``out = b + A @ a`` (``A [m, n]``, a row per output as torch's ``Linear.weight``): four outputs
    at a time, each a vectorised dot product over the inputs, so every input vector is loaded once
    per four rows and nothing is stored inside the loop (no aliasing checks).  The sums take ``A``'s
    type (numba unifies them): float32, or float64 for the embedding map."""
    m, n = A.shape
    j = 0
    while j + 4 <= m:
        r0, r1, r2, r3 = A[j], A[j + 1], A[j + 2], A[j + 3]
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for i in range(n):
            v = a[i]
            s0 += r0[i] * v
            s1 += r1[i] * v
            s2 += r2[i] * v
            s3 += r3[i] * v
        out[j] = b[j] + s0
        out[j + 1] = b[j + 1] + s1
        out[j + 2] = b[j + 2] + s2
        out[j + 3] = b[j + 3] + s3
        j += 4
    while j < m:
        r = A[j]
        acc = np.float32(0.0)
        for i in range(n):
            acc += r[i] * a[i]
        out[j] = b[j] + acc
        j += 1


@njit(cache=True)
def gelu32(v):  # pragma: no cover - compiled
    """:func:`_gelu32` over a float32 array (for tests)."""
    out = np.empty_like(v)
    for i in range(v.shape[0]):
        out[i] = _gelu32(v[i])
    return out


@njit(cache=True, inline="always")
def _section(buf, wi, j, n):  # pragma: no cover - compiled
    """The ``n`` elements of ``buf`` from the offset ``wi[j]`` on (a packed section, :func:`_pack`)."""
    o = wi[j]
    return buf[o : o + n]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _advance(x, r0, n, wf, wd, wi, sf):  # pragma: no cover - compiled
    """Push rows ``r0 .. r0 + n - 1`` of ``x [*, F]`` into every student's ring, then decide: ŷ -> ``wd[D_OUT:D_OUT + T]``.

    Loops index views (slices / reshapes of the packed buffers) with plain loop counters only: an
    index LLVM cannot prove non-negative keeps numba's negative-index wrap-around and turns every
    vectorised load into a gather (7x slower here)."""
    K, F, W, c, H = wi[I_K], wi[I_F], wi[I_W], wi[I_C], wi[I_H]
    D, M, CD, T, KMAX = wi[I_D], wi[I_M], wi[I_CD], wi[I_T], wi[I_KMAX]
    Wc = W * c
    # float32 weights, one section per matrix kind with every student's: x_mean [F], x_std [F], then
    # each map as torch stores it, a row per output (see _affine): the compression Cw [K, c, F],
    # cb [K, c], W1 [K, H, W*c], b1 [K, H], W2 [K, D, H], b2 [K, D], the heads Wz [K, M, D], bz [K, M];
    # at the offsets wi[I_WF:] (WF_SECTIONS)
    mean = _section(wf, wi, I_WF, F)
    std = _section(wf, wi, I_WF + 1, F)
    Cw = _section(wf, wi, I_WF + 2, K * c * F).reshape((K, c, F))
    cb = _section(wf, wi, I_WF + 3, K * c).reshape((K, c))
    W1 = _section(wf, wi, I_WF + 4, K * H * Wc).reshape((K, H, Wc))
    b1 = _section(wf, wi, I_WF + 5, K * H).reshape((K, H))
    W2 = _section(wf, wi, I_WF + 6, K * D * H).reshape((K, D, H))
    b2 = _section(wf, wi, I_WF + 7, K * D).reshape((K, D))
    Wz = _section(wf, wi, I_WF + 8, K * M * D).reshape((K, M, D))
    bz = _section(wf, wi, I_WF + 9, K * M).reshape((K, M))
    # float32 state (SF_SECTIONS at wi[I_SF:]): ring [K, 2W, c] (each step vector at slots p and
    # p + W, so the window, oldest first, is the contiguous run of slots head .. head + W - 1),
    # xs [F], hid [H], z [D], out [M]
    ring = _section(sf, wi, I_SF, K * 2 * Wc).reshape((K, 2 * W, c))
    xs = _section(sf, wi, I_SF + 1, F)
    hid = _section(sf, wi, I_SF + 2, H)
    z = _section(sf, wi, I_SF + 3, D)
    out = _section(sf, wi, I_SF + 4, M)
    head = wi[I_HEAD]
    for r in range(r0, r0 + n):
        xr = x[r]
        for f in range(F):
            v = (xr[f] - mean[f]) / std[f]  # float32, like StudentSet.standardise
            xs[f] = v if np.isfinite(v) else np.float32(0.0)
        for s in range(K):
            g = ring[s, head]
            _affine(xs, Cw[s], cb[s], g)
            _gelu_inplace(g)
            g2 = ring[s, head + W]
            for q in range(c):
                g2[q] = g[q]
        head += 1
        if head == W:
            head = 0
    wi[I_HEAD] = head
    # per student: the MLP over the window, the heads, the common-space embedding (float64)
    o = D_OUT + 2 * T
    scale = wd[o : o + T]
    offset = wd[o + T : o + 2 * T]
    o += 2 * T
    preds = wd[o : o + K * T].reshape((K, T))
    o += K * T
    emb = wd[o : o + K * CD].reshape((K, CD))
    o += K * CD
    n_pairs = max(KMAX * (KMAX - 1) // 2, 1)
    o_e = o + K * K + n_pairs + KMAX
    E = wd[o_e : o_e + K * CD * D].reshape((K, CD, D))
    eb = wd[o_e + K * CD * D : o_e + K * CD * D + K * CD].reshape((K, CD))
    out_task = wi[I_OUT_TASK : I_OUT_TASK + K * M].reshape((K, M))
    preds[:, :] = np.nan
    flat = ring.reshape((K, 2 * Wc))
    hc = head * c
    for s in range(K):
        win = flat[s, hc : hc + Wc]  # this student's window, oldest step first
        _affine(win, W1[s], b1[s], hid)
        _gelu_inplace(hid)
        _affine(hid, W2[s], b2[s], z)
        _gelu_inplace(z)
        _affine(z, Wz[s], bz[s], out)
        _affine(z, E[s], eb[s], emb[s])  # float64: the sums take E's type
        for j in range(M):
            t = out_task[s, j]
            if t >= 0:
                preds[s, t] = np.float64(out[j]) * scale[t] + offset[t]
    # Hájek-MoE of every task (mirrors moe.hajek_contributions / fast._hajek), float64
    o_ex = I_OUT_TASK + K * M
    experts = wi[o_ex : o_ex + T * KMAX].reshape((T, KMAX))
    n_experts = wi[o_ex + T * KMAX : o_ex + T * KMAX + T]
    d2 = wd[o : o + K * K].reshape((K, K))
    o += K * K
    pairs = wd[o : o + n_pairs]
    off = wd[o + n_pairs : o + n_pairs + KMAX]
    y = wd[D_OUT : D_OUT + T]
    bandwidth = wd[D_OUT + T : D_OUT + 2 * T]
    hajek_mix(emb, preds, experts, n_experts, bandwidth, wd[D_TEMP], d2, pairs, off, y)


#: :func:`_advance`'s argument types on the per-decision path (:meth:`IncrementalCMM.stepper`)
_ADVANCE_TYPES = (types.float32[:, ::1], types.int64, types.int64, types.float32[::1], types.float64[::1],
                  types.int64[::1], types.float32[::1])


def _pack(parts: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """The float32 ``parts`` in one zero-padded buffer whose every part starts on a 64-byte line, and their offsets."""
    off, n = [], 0
    for a in parts:
        off.append(n)
        n += -(-a.size // ALIGN) * ALIGN
    buf = np.zeros(n + ALIGN, np.float32)
    start = (-(buf.ctypes.data // buf.itemsize)) % ALIGN  # numpy aligns to 16 bytes only
    out = buf[start : start + n]
    for o, a in zip(off, parts):
        out[o : o + a.size] = a
    return out, off


def _f32(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def supports(students: "StudentSet", moe: Any) -> bool:
    """True when :class:`IncrementalCMM` can run this set and mixer (MLP students of one shape + Hájek)."""
    from cmm_bt_plugins.cmm.moe import HajekMoE
    from cmm_bt_plugins.cmm.nets import MLPBackbone

    sts = students.students
    if not sts or not isinstance(moe, HajekMoE) or not all(isinstance(s.net.backbone, MLPBackbone) for s in sts):
        return False
    shapes = {tuple((k, tuple(v.shape)) for k, v in s.net.backbone.state_dict().items()) for s in sts}
    return len(shapes) == 1 and len({s.net.head.in_features for s in sts}) == 1


class IncrementalCMM:
    """One CMM decision per step from the new step row alone (see the module doc).

    ``reset(window [W, F])`` fills the rings from a whole window and decides on it; then
    ``step(row [F])`` (or ``step_at(steps, r)``: row ``r`` of a ``float32 [*, F]`` step array, e.g.
    ``FeatureSet.steps``) pushes the next step and decides on the window ending there.  Both return
    ŷ ``[T]`` as a view of an internal buffer (overwritten by the next call; copy to keep it).
    """

    def __init__(self, students: "StudentSet", moe: Any):
        if not supports(students, moe):
            raise NotImplementedError("the incremental path needs MLP students of one shape mixed by hajek")
        sts = students.students
        bb0 = sts[0].net.backbone
        K, T, CD = len(sts), len(students.tasks), int(students.common_dim)
        F, c = int(bb0.compress.in_features), int(bb0.compress.out_features)
        H = int(bb0.mlp[2].out_features)
        W = int(bb0.mlp[2].in_features) // c
        D = int(bb0.mlp[4].out_features)
        M = max(len(s.spec.tasks) for s in sts)
        self.K, self.T, self.W, self.F = K, T, W, F
        mats: dict[str, list[np.ndarray]] = {k: [] for k in WF_SECTIONS[2:]}
        out_task = np.full((K, M), -1, dtype=np.int64)
        E = np.zeros((K, CD, D))  # the projector composed with the common-space map, float64, [out, in]
        eb = np.zeros((K, CD))
        for k, s in enumerate(sts):
            b, net, m, no = s.net.backbone, s.net, int(s.common_map.shape[0]), len(s.spec.tasks)
            Wz = np.zeros((M, D), np.float32)
            bz = np.zeros(M, np.float32)
            Wz[:no], bz[:no] = _f32(net.head.weight), _f32(net.head.bias)
            cmap = np.asarray(s.common_map, np.float64)
            E[k] = cmap.T @ _f32(net.projector.weight)[:m].astype(np.float64)
            eb[k] = _f32(net.projector.bias)[:m].astype(np.float64) @ cmap + np.asarray(s.common_bias, np.float64)
            for key, arr in zip(mats, (_f32(b.compress.weight), _f32(b.compress.bias), _f32(b.mlp[2].weight), _f32(b.mlp[2].bias),
                                       _f32(b.mlp[4].weight), _f32(b.mlp[4].bias), Wz, bz)):
                mats[key].append(np.ascontiguousarray(arr, dtype=np.float32).ravel())
            out_task[k, :no] = s.spec.tasks
        self.wf, wf_off = _pack([np.asarray(students.x_mean, np.float32).ravel(), np.asarray(students.x_std, np.float32).ravel(),
                                 *(np.concatenate(v) for v in mats.values())])
        self.sf, sf_off = _pack([np.zeros(n, np.float32) for n in (K * 2 * W * c, F, H, D, M)])
        experts = [students.experts_for(t) for t in range(T)]
        kmax = max(1, max(len(e) for e in experts))
        ex = np.zeros((T, kmax), dtype=np.int64)
        for t, e in enumerate(experts):
            ex[t, : len(e)] = e
        head = np.array([K, F, W, c, H, D, M, CD, T, kmax, 0, *wf_off, *sf_off], dtype=np.int64)
        self.wi = np.concatenate([head, out_task.ravel(), ex.ravel(), np.asarray([len(e) for e in experts], np.int64)])
        n_pairs = max(kmax * (kmax - 1) // 2, 1)
        self.wd = np.concatenate([np.zeros(D_OUT + 4 * T + K * T + K * CD + K * K + n_pairs + kmax), E.ravel(), eb.ravel()])
        self.wd[D_TEMP] = float(moe.config.temperature)
        self.wd[D_OUT + 2 * T : D_OUT + 3 * T] = np.asarray(students.y_std, dtype=np.float64)
        self.wd[D_OUT + 3 * T : D_OUT + 4 * T] = np.asarray(students.y_mean, dtype=np.float64)
        self.moe = moe
        self.refresh()
        self.y = self.wd[D_OUT : D_OUT + T]

    def refresh(self) -> None:
        """Re-read the mixer's fitted bandwidths (call after ``fit_task``)."""
        T = self.T
        bw = [self.moe.state.get(t) for t in range(T)]
        self.wd[D_OUT + T : D_OUT + 2 * T] = [np.nan if b is None else float(b) for b in bw]

    def _rows(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.F:
            raise ValueError(f"step rows must be [n, {self.F}], got {x.shape}")
        return x

    def reset(self, window: np.ndarray) -> np.ndarray:
        """Fill the rings from ``window [W, F]`` (oldest step first) and return ŷ for it."""
        x = self._rows(window)
        if x.shape[0] != self.W:
            raise ValueError(f"one decision needs a window [{self.W}, {self.F}], got {x.shape}")
        self.wi[I_HEAD] = 0
        _advance(x, 0, self.W, self.wf, self.wd, self.wi, self.sf)
        return self.y

    def step(self, row: np.ndarray) -> np.ndarray:
        """Push the next step's features ``row [F]`` and return ŷ for the window ending there."""
        _advance(self._rows(np.reshape(row, (1, -1))), 0, 1, self.wf, self.wd, self.wi, self.sf)
        return self.y

    def stepper(self, steps: np.ndarray) -> Callable[[int], np.ndarray]:
        """``decide(r)`` = :meth:`step_at` ``(steps, r)`` for this one step array, checked (and made a
        ``float32`` C-contiguous array) once here and then handed to the compiled kernel's entry point
        directly: no type dispatch per call (~0.4 µs of a ~10 µs decision).  ``r`` is not checked."""
        x = self._rows(steps)
        run = _advance.compile(_ADVANCE_TYPES)
        wf, wd, wi, sf, y = self.wf, self.wd, self.wi, self.sf, self.y

        def decide(r: int) -> np.ndarray:
            run(x, r, 1, wf, wd, wi, sf)
            return y

        return decide

    def step_at(self, steps: np.ndarray, r: int) -> np.ndarray:
        """:meth:`step` with row ``r`` of ``steps`` (``float32 [*, F]``, C-contiguous; not checked: the hot path)."""
        _advance(steps, r, 1, self.wf, self.wd, self.wi, self.sf)
        return self.y


__all__ = ["IncrementalCMM", "gelu32", "supports"]
