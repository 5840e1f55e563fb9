"""Compact batch-1 inference of a CMM decision: every student + the mixture, without torch.

The torch students (:mod:`cmm_bt_plugins.cmm.nets`) stay the training / batch path.  For one
decision their per-call overhead dominates (and so does numpy's, ~5 µs a call on a loaded core),
so :class:`FastCMM` exports the trained weights once (float64 arrays, students of one architecture
stacked) and runs one decision in four numba kernels: input standardisation (float32, exactly as
``StudentSet.standardise``), the backbones of all students, their heads / projectors / common-space
maps, and the Hájek-MoE of every task on the K common-space embeddings (one K×K distance matrix).
Other mixers (``mean``, ``gate``, ``best-single``) use their own numpy ``weights`` per task.

Results equal the torch path (``StudentSet.predict`` + ``stages.mix_experts``) up to the float32
rounding of the torch forward (tested < 1e-5).  The TCN kernel only computes the time steps the
last step's receptive field needs.  Kernels are compiled on first use (``cache=True``: once per
machine); torch is imported only while exporting the weights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from cmm_bt_plugins.cmm.hajek_kernel import hajek_mix

if TYPE_CHECKING:
    from cmm_bt_plugins.cmm.ofdd import StudentSet

_SQRT1_2 = 0.7071067811865476


# ------------------------------------------------------------------------------------ kernels
@njit(cache=True)
def _affine(a, W, b, out):  # pragma: no cover - compiled
    """``out = a @ W + b`` (a [n], W [n, m], b [m])."""
    m = W.shape[1]
    for j in range(m):
        out[j] = b[j]
    for i in range(a.shape[0]):
        ai = a[i]
        for j in range(m):
            out[j] += ai * W[i, j]


@njit(cache=True)
def _gelu(v):  # pragma: no cover - compiled
    for j in range(v.shape[0]):
        v[j] = 0.5 * v[j] * (1.0 + math.erf(v[j] * _SQRT1_2))


@njit(cache=True)
def _standardise(x, mean, std, out):  # pragma: no cover - compiled
    W, F = x.shape
    for w in range(W):
        for f in range(F):
            v = (x[w, f] - mean[f]) / std[f]  # float32 arithmetic, like StudentSet.standardise
            out[w, f] = v if np.isfinite(v) else 0.0


@njit(cache=True)
def _mlp(xs, Wc, bc, W1, b1, W2, b2, z):  # pragma: no cover - compiled
    S, W, c = Wc.shape[0], xs.shape[0], Wc.shape[2]
    flat = np.empty(W * c)
    hid = np.empty(W1.shape[2])
    for s in range(S):
        for w in range(W):
            _affine(xs[w], Wc[s], bc[s], flat[w * c : (w + 1) * c])
        _gelu(flat)
        _affine(flat, W1[s], b1[s], hid)
        _gelu(hid)
        _affine(hid, W2[s], b2[s], z[s])
        _gelu(z[s])


@njit(cache=True)
def _gru(xs, Wi, bi, Wh, bh, Wo, bo, z):  # pragma: no cover - compiled
    S, W, H = Wi.shape[0], xs.shape[0], Wh.shape[1]
    gi = np.empty(3 * H)
    gh = np.empty(3 * H)
    h = np.empty(H)
    for s in range(S):
        h[:] = 0.0
        for t in range(W):
            _affine(xs[t], Wi[s], bi[s], gi)
            _affine(h, Wh[s], bh[s], gh)
            for j in range(H):  # torch gate order r, z, n
                r = 1.0 / (1.0 + math.exp(-(gi[j] + gh[j])))
                u = 1.0 / (1.0 + math.exp(-(gi[H + j] + gh[H + j])))
                n = math.tanh(gi[2 * H + j] + r * gh[2 * H + j])
                h[j] = (1.0 - u) * n + u * h[j]
        _affine(h, Wo[s], bo[s], z[s])
        _gelu(z[s])


@njit(cache=True)
def _tcn(xs, Wk, bk, Wr, br, has_res, dil, need, Wo, bo, z):  # pragma: no cover - compiled
    """Wk [L, S, k, Cmax, C] (tap j reads t − (k−1−j)·d), Wr [L, S, Cmax, C]; level 0 reads the
    F input features (the first F rows of its Cmax); need [L, W]: steps a level must compute."""
    L, S, k, C = Wk.shape[0], Wk.shape[1], Wk.shape[2], Wk.shape[4]
    W, F = xs.shape
    a = np.zeros((W, max(F, C)))
    y = np.zeros((W, C))
    for s in range(S):
        a[:, :F] = xs
        cin = F
        for l in range(L):
            d = dil[l]
            for t in range(W):
                if not need[l, t]:
                    continue
                for o in range(C):
                    y[t, o] = bk[l, s, o]
                for j in range(k):
                    tt = t - (k - 1 - j) * d
                    if tt < 0:
                        continue
                    for i in range(cin):
                        ai = a[tt, i]
                        for o in range(C):
                            y[t, o] += ai * Wk[l, s, j, i, o]
                for o in range(C):
                    v = y[t, o]
                    y[t, o] = 0.5 * v * (1.0 + math.erf(v * _SQRT1_2))
                if has_res[l]:
                    for o in range(C):
                        y[t, o] += br[l, s, o]
                    for i in range(cin):
                        ai = a[t, i]
                        for o in range(C):
                            y[t, o] += ai * Wr[l, s, i, o]
                else:
                    for o in range(C):
                        y[t, o] += a[t, o]
            for t in range(W):
                if need[l, t]:
                    for o in range(C):
                        a[t, o] = y[t, o]
            cin = C
        _affine(a[W - 1, :C], Wo[s], bo[s], z[s])
        _gelu(z[s])


@njit(cache=True)
def _heads(z, Wz, bz, M, cb, n_out, src, dst, scale, offset, inv, preds, emb):  # pragma: no cover - compiled
    """Head + projector (one affine map per student), common-space map, target units."""
    S, m = Wz.shape[0], Wz.shape[2]
    out = np.empty((S, m))
    for s in range(S):
        _affine(z[s], Wz[s], bz[s], out[s])
        _affine(out[s, n_out:], M[s], cb[s], emb[inv[s]])
    flat = preds.reshape(-1)
    flat[:] = np.nan
    o = out.reshape(-1)
    for i in range(src.shape[0]):
        flat[dst[i]] = o[src[i]] * scale[i] + offset[i]


@njit(cache=True)
def _hajek(preds, emb, experts, n_experts, bandwidth, temperature, y):  # pragma: no cover - compiled
    """:func:`~cmm_bt_plugins.cmm.hajek_kernel.hajek_mix` with its scratch buffers."""
    K = emb.shape[0]
    kmax = experts.shape[1]
    d2 = np.empty((K, K))
    pairs = np.empty(max(kmax * (kmax - 1) // 2, 1))
    off = np.empty(kmax)
    hajek_mix(emb, preds, experts, n_experts, bandwidth, temperature, d2, pairs, off, y)


# ----------------------------------------------------------------------------------- export
def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """C-contiguous float64 stack (the kernels' inner loops need contiguous rows)."""
    return np.ascontiguousarray(np.stack(arrays), dtype=np.float64)


class _MLPGroup:
    def __init__(self, nets: list[Any]):
        bb = [n.backbone for n in nets]
        self.Wc = _stack([_np(b.compress.weight).T for b in bb])  # [S, F, c]
        self.bc = _stack([_np(b.compress.bias) for b in bb])
        self.W1 = _stack([_np(b.mlp[2].weight).T for b in bb])  # [S, W*c, h]
        self.b1 = _stack([_np(b.mlp[2].bias) for b in bb])
        self.W2 = _stack([_np(b.mlp[4].weight).T for b in bb])  # [S, h, d]
        self.b2 = _stack([_np(b.mlp[4].bias) for b in bb])

    def __call__(self, xs: np.ndarray, z: np.ndarray) -> None:
        _mlp(xs, self.Wc, self.bc, self.W1, self.b1, self.W2, self.b2, z)


class _GRUGroup:
    def __init__(self, nets: list[Any]):
        bb = [n.backbone for n in nets]
        self.Wi = _stack([_np(b.gru.weight_ih_l0).T for b in bb])  # [S, F, 3H]
        self.bi = _stack([_np(b.gru.bias_ih_l0) for b in bb])
        self.Wh = _stack([_np(b.gru.weight_hh_l0).T for b in bb])  # [S, H, 3H]
        self.bh = _stack([_np(b.gru.bias_hh_l0) for b in bb])
        self.Wo = _stack([_np(b.out[0].weight).T for b in bb])  # [S, H, d]
        self.bo = _stack([_np(b.out[0].bias) for b in bb])

    def __call__(self, xs: np.ndarray, z: np.ndarray) -> None:
        _gru(xs, self.Wi, self.bi, self.Wh, self.bh, self.Wo, self.bo, z)


class _TCNGroup:
    def __init__(self, nets: list[Any]):
        from torch import nn

        bb = [n.backbone for n in nets]
        blocks0 = list(bb[0].blocks)
        L, S = len(blocks0), len(bb)
        k, C = blocks0[0].conv.kernel_size[0], blocks0[0].conv.out_channels
        cmax = max(C, blocks0[0].conv.in_channels)
        self.Wk = np.zeros((L, S, k, cmax, C))
        self.bk = np.zeros((L, S, C))
        self.Wr = np.zeros((L, S, cmax, C))
        self.br = np.zeros((L, S, C))
        self.has_res = np.zeros(L, dtype=np.bool_)
        self.dil = np.array([blk.conv.dilation[0] for blk in blocks0], dtype=np.int64)
        for l in range(L):
            self.has_res[l] = not isinstance(blocks0[l].res, nn.Identity)
            for s, b in enumerate(bb):
                blk = b.blocks[l]
                w = _np(blk.conv.weight)  # [C, cin, k]
                self.Wk[l, s, :, : w.shape[1]] = w.transpose(2, 1, 0)
                self.bk[l, s] = _np(blk.conv.bias)
                if self.has_res[l]:
                    r = _np(blk.res.weight)[:, :, 0]  # [C, cin]
                    self.Wr[l, s, : r.shape[1]] = r.T
                    self.br[l, s] = _np(blk.res.bias)
        self.k = k
        self.Wo = _stack([_np(b.out[0].weight).T for b in bb])
        self.bo = _stack([_np(b.out[0].bias) for b in bb])
        self._need: dict[int, np.ndarray] = {}

    def need(self, W: int) -> np.ndarray:
        """``[L, W]`` steps each level must compute for the last step's output (receptive field)."""
        if W not in self._need:
            L = len(self.dil)
            need = np.zeros((L, W), dtype=np.bool_)
            need[L - 1, W - 1] = True
            for l in range(L - 1, 0, -1):
                for t in np.flatnonzero(need[l]):
                    for j in range(self.k):
                        if t - j * self.dil[l] >= 0:
                            need[l - 1, t - j * self.dil[l]] = True
            self._need[W] = need
        return self._need[W]

    def __call__(self, xs: np.ndarray, z: np.ndarray) -> None:
        _tcn(xs, self.Wk, self.bk, self.Wr, self.br, self.has_res, self.dil, self.need(xs.shape[0]), self.Wo, self.bo, z)


def _group_for(net: Any):
    from cmm_bt_plugins.cmm.nets import GRUBackbone, MLPBackbone, TCNBackbone

    for cls, grp in ((MLPBackbone, _MLPGroup), (GRUBackbone, _GRUGroup), (TCNBackbone, _TCNGroup)):
        if isinstance(net.backbone, cls):
            return grp
    raise NotImplementedError(f"no fast inference path for backbone {type(net.backbone).__name__}")


def _signature(net: Any) -> tuple:
    return (type(net.backbone).__name__, tuple((k, tuple(v.shape)) for k, v in net.backbone.state_dict().items()))


# -------------------------------------------------------------------------------- students
class CompiledStudents:
    """Export of a :class:`StudentSet`; :meth:`forward` maps one raw window ``[W, F]`` to
    ``preds [K, T]`` (target units, NaN for tasks a student does not predict) and
    ``emb [K, C]`` (common-space embeddings), students in the set's order."""

    def __init__(self, students: "StudentSet"):
        sts = students.students
        if not sts:
            raise ValueError("no students to compile")
        self.K, self.T, self.C = len(sts), len(students.tasks), students.common_dim
        self.x_mean = np.ascontiguousarray(students.x_mean, dtype=np.float32)
        self.x_std = np.ascontiguousarray(students.x_std, dtype=np.float32)
        sig: dict[tuple, list[int]] = {}
        for k, s in enumerate(sts):
            sig.setdefault(_signature(s.net), []).append(k)
        self.groups: list[tuple[Any, slice]] = []
        order: list[int] = []
        for idx in sig.values():
            self.groups.append((_group_for(sts[idx[0]].net)([sts[k].net for k in idx]), slice(len(order), len(order) + len(idx))))
            order += idx
        self.inv = np.asarray(order, dtype=np.int64)  # stacked row g is student inv[g]
        self.d = sts[0].net.head.in_features
        p = max(int(s.common_map.shape[0]) for s in sts)
        n_out = max(len(s.spec.tasks) for s in sts)
        self.Wz = np.zeros((self.K, self.d, n_out + p))
        self.bz = np.zeros((self.K, n_out + p))
        self.M = np.zeros((self.K, p, self.C))
        self.cb = np.zeros((self.K, self.C))
        src, dst, scale, offset = [], [], [], []
        for g, k in enumerate(order):
            s = sts[k]
            net, m, no = s.net, s.common_map.shape[0], len(s.spec.tasks)
            self.Wz[g, :, :no], self.bz[g, :no] = _np(net.head.weight).T, _np(net.head.bias)
            self.Wz[g, :, n_out : n_out + m], self.bz[g, n_out : n_out + m] = _np(net.projector.weight).T[:, :m], _np(net.projector.bias)[:m]
            self.M[g, :m] = np.asarray(s.common_map, dtype=np.float64)
            self.cb[g] = np.asarray(s.common_bias, dtype=np.float64)
            for j, t in enumerate(s.spec.tasks):
                src.append(g * (n_out + p) + j)
                dst.append(k * self.T + t)
                scale.append(float(students.y_std[t]))
                offset.append(float(students.y_mean[t]))
        self.n_out = n_out
        self.src, self.dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        self.scale, self.offset = np.asarray(scale, dtype=np.float64), np.asarray(offset, dtype=np.float64)
        self._z = np.zeros((self.K, self.d))

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """As ``StudentSet.standardise`` (float32, NaN / inf -> 0), returned as float64 ``[W, F]``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(f"one decision needs a window [W, {self.x_mean.shape[0]}], got {x.shape}")
        out = np.empty(x.shape)
        _standardise(x, self.x_mean, self.x_std, out)
        return out

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs = self.standardise(x)
        z = self._z
        for grp, sl in self.groups:
            grp(xs, z[sl])
        preds = np.empty((self.K, self.T))
        emb = np.empty((self.K, self.C))
        _heads(z, self.Wz, self.bz, self.M, self.cb, self.n_out, self.src, self.dst, self.scale, self.offset, self.inv, preds, emb)
        return preds, emb


# ----------------------------------------------------------------------------------- mixture
class FastCMM:
    """One CMM decision: ``decide(window [W, F]) -> ŷ [T]`` (all students + the fitted mixer)."""

    def __init__(self, students: "StudentSet", moe: Any):
        from cmm_bt_plugins.cmm.moe import HajekMoE

        self.students = CompiledStudents(students)
        self.moe = moe
        self.T = self.students.T
        self.experts = [np.asarray(students.experts_for(t), dtype=np.int64) for t in range(self.T)]
        self.hajek = isinstance(moe, HajekMoE)
        kmax = max(1, max(len(e) for e in self.experts))
        self._ex = np.zeros((self.T, kmax), dtype=np.int64)
        for t, e in enumerate(self.experts):
            self._ex[t, : len(e)] = e
        self._n = np.asarray([len(e) for e in self.experts], dtype=np.int64)
        self._temperature = float(moe.config.temperature) if self.hajek else 1.0
        self.refresh()

    def refresh(self) -> None:
        """Re-read the mixer's fitted bandwidths (call after ``fit_task``)."""
        if self.hajek:
            bw = [self.moe.state.get(t) for t in range(self.T)]
            self._bw = np.asarray([np.nan if b is None else float(b) for b in bw], dtype=np.float64)

    def decide(self, x: np.ndarray) -> np.ndarray:
        preds, emb = self.students.forward(x)
        y = np.empty(self.T)
        if self.hajek:
            _hajek(preds, emb, self._ex, self._n, self._bw, self._temperature, y)
            return y
        for t, ex in enumerate(self.experts):
            y[t] = self.moe.weights(t, preds[ex, t][None], emb[ex][None])[0] @ preds[ex, t] if len(ex) else np.nan
        return y


__all__ = ["CompiledStudents", "FastCMM"]
