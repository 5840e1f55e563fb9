"""The trained policy's network as numpy arrays, and its compiled (numba) forward pass.

:class:`Network` holds the actor's layers as extracted from the SB3 policy (Linear weights, biases and
the activation after each) and the head that turns the last layer's output into an action: ``argmax``
(discrete PPO / A2C logits, DQN Q-values), ``clip`` to [-1, 1] (continuous PPO / A2C: the Gaussian's
mean, clipped as SB3's ``predict`` does) or ``tanh`` (SAC's squashed mean).

:func:`pack` lays network, action map and observation layout out in one float64 array; the compiled
quoting function :func:`rl_policy_quote` (the engine's policy signature) builds the observation from
the step's signal row (the standardised feature window) plus ``q / limit`` and the episode left, runs the
MLP in float64 and maps the action with :mod:`cmm_bt_plugins.rl.actions` -- the same function the
environment uses.  ``tests/plugins/rl/test_forward.py`` checks that its actions equal the torch policy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from cmm_bt.components import NO_PRICE
from cmm_bt.engine.compiled import POLICY_SIGNATURE

from cmm_bt_plugins.rl.actions import ActionMap, continuous_quotes_nb, discrete_quotes_nb

ACT_NONE, ACT_TANH, ACT_RELU = 0, 1, 2
HEAD_ARGMAX, HEAD_CLIP, HEAD_TANH = 0, 1, 2
HEADS = {"argmax": HEAD_ARGMAX, "clip": HEAD_CLIP, "tanh": HEAD_TANH}

# params header
H_D, H_LIMIT, H_QTY, H_NL, H_HEAD, H_KIND, H_NGRID, H_LO, H_HI, H_NOUT = range(10)
HEADER = 10


@dataclass
class Network:
    """An MLP: ``layers`` of ``(W [out, in] float32, b [out] float32, activation)``, then ``head``."""

    layers: list[tuple[np.ndarray, np.ndarray, int]]
    head: str

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.layers[-1][0].shape[0])

    def n_params(self) -> int:
        return int(sum(w.size + b.size for w, b, _ in self.layers))

    @classmethod
    def from_modules(cls, modules, head: str) -> "Network":
        """From torch modules in order: each ``Linear`` starts a layer, a ``Tanh`` / ``ReLU`` after it sets its activation."""
        import torch.nn as nn

        layers: list[list] = []
        for m in modules:
            if isinstance(m, nn.Linear):
                layers.append([m.weight.detach().cpu().numpy().astype(np.float32).copy(),
                               m.bias.detach().cpu().numpy().astype(np.float32).copy(), ACT_NONE])
            elif isinstance(m, (nn.Tanh, nn.ReLU)) and layers and layers[-1][2] == ACT_NONE:
                layers[-1][2] = ACT_TANH if isinstance(m, nn.Tanh) else ACT_RELU
            elif isinstance(m, (nn.Flatten, nn.Identity)):
                continue
            else:
                raise TypeError(f"cannot compile network module {m!r}")
        if not layers:
            raise TypeError("no Linear layer in the network")
        return cls([tuple(layer) for layer in layers], head)

    def to_npz(self) -> dict:
        out = {"head": np.array([HEADS[self.head]]), "n": np.array([len(self.layers)])}
        for i, (w, b, act) in enumerate(self.layers):
            out[f"w{i}"], out[f"b{i}"], out[f"a{i}"] = w, b, np.array([act])
        return out

    @classmethod
    def from_npz(cls, z) -> "Network":
        names = {v: k for k, v in HEADS.items()}
        return cls([(np.asarray(z[f"w{i}"]), np.asarray(z[f"b{i}"]), int(z[f"a{i}"][0])) for i in range(int(z["n"][0]))],
                   names[int(z["head"][0])])

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """The last layer's output for a batch ``obs [n, in]`` (numpy, float64; for tests and tools)."""
        h = np.asarray(obs, np.float64)
        for w, b, act in self.layers:
            h = h @ w.astype(np.float64).T + b
            h = np.tanh(h) if act == ACT_TANH else np.maximum(h, 0.0) if act == ACT_RELU else h
        return h


def pack(net: Network, actions: ActionMap, n_features: int) -> np.ndarray:
    """The float64 params of :func:`rl_policy_quote` (see the module doc)."""
    if net.n_inputs != n_features + 2:
        raise ValueError(f"the network takes {net.n_inputs} inputs, the observation has {n_features + 2}")
    head = np.zeros(HEADER)
    head[[H_D, H_LIMIT, H_QTY, H_NL, H_HEAD, H_KIND, H_NGRID, H_LO, H_HI, H_NOUT]] = [
        n_features, actions.limit, actions.qty, len(net.layers), HEADS[net.head], 0 if actions.kind == "discrete" else 1,
        actions.n, actions.lo, actions.hi, net.n_outputs]
    meta = np.array([[w.shape[0], w.shape[1], act] for w, _, act in net.layers], np.float64).ravel()
    weights = [np.concatenate([w.astype(np.float64).ravel(), b.astype(np.float64)]) for w, b, _ in net.layers]
    return np.ascontiguousarray(np.concatenate([head, meta, *weights, actions.table.astype(np.float64).ravel()]))


@njit(cache=True)
def mlp_forward(params, x):
    """The network of ``params`` on one input ``x`` (float64); returns the last layer's output."""
    nl = int(params[H_NL])
    off = HEADER + 3 * nl
    h = x
    for layer in range(nl):
        n_out = int(params[HEADER + 3 * layer])
        n_in = int(params[HEADER + 3 * layer + 1])
        act = int(params[HEADER + 3 * layer + 2])
        y = np.empty(n_out)
        for o in range(n_out):
            acc = 0.0
            base = off + o * n_in
            for i in range(n_in):
                acc += params[base + i] * h[i]
            acc += params[off + n_out * n_in + o]
            if act == ACT_TANH:
                acc = math.tanh(acc)
            elif act == ACT_RELU:
                acc = max(acc, 0.0)
            y[o] = acc
        off += n_out * n_in + n_out
        h = y
    return h


@njit(cache=True)
def _grid_offset(params):
    nl = int(params[H_NL])
    off = HEADER + 3 * nl
    for layer in range(nl):
        n_out = int(params[HEADER + 3 * layer])
        n_in = int(params[HEADER + 3 * layer + 1])
        off += n_out * n_in + n_out
    return off


@njit(cache=True)
def act(params, x):
    """``(index, a0, a1)``: the action for observation ``x`` (index for discrete heads, a0 / a1 for continuous)."""
    y = mlp_forward(params, x)
    head = int(params[H_HEAD])
    if head == HEAD_ARGMAX:
        best = 0
        for j in range(1, y.shape[0]):
            if y[j] > y[best]:
                best = j
        return best, 0.0, 0.0
    if head == HEAD_CLIP:
        return -1, min(max(y[0], -1.0), 1.0), min(max(y[1], -1.0), 1.0)
    return -1, math.tanh(y[0]), math.tanh(y[1])


@njit(cache=True)
def observation(params, signals, position, episode_progress):
    """The observation of one step: the signal row (standardised feature window), q / limit, episode left."""
    d = int(params[H_D])
    x = np.empty(d + 2)
    for j in range(d):
        x[j] = np.float32(signals[j])
    p = position / params[H_LIMIT]
    x[d] = np.float32(min(max(p, -1.0), 1.0))
    x[d + 1] = np.float32(1.0 - min(max(episode_progress, 0.0), 1.0))
    return x


@njit(POLICY_SIGNATURE, cache=True)
def rl_policy_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    """The trained policy as an engine quoting function (compiled path)."""
    if signals.shape[0] < int(params[H_D]):
        raise ValueError("rl-policy: the signal row is shorter than the observation's feature window")
    x = observation(params, signals, position, episode_progress)
    idx, a0, a1 = act(params, x)
    qty, limit = params[H_QTY], params[H_LIMIT]
    if int(params[H_KIND]) == 0:
        g = _grid_offset(params) + 3 * idx
        return discrete_quotes_nb(np.int64(params[g]), np.int64(params[g + 1]), np.int64(params[g + 2]), best_bid,
                                  best_ask, position, qty, limit)
    return continuous_quotes_nb(a0, a1, np.int64(params[H_LO]), np.int64(params[H_HI]), best_bid, best_ask, position,
                                qty, limit)


@njit(cache=True)
def batch_actions(params, obs):
    """Actions of the compiled form for a batch ``obs [n, d + 2]`` (float32): int64 ``[n]`` or float64 ``[n, 2]``."""
    n = obs.shape[0]
    idx = np.empty(n, np.int64)
    cont = np.empty((n, 2))
    for r in range(n):
        x = obs[r].astype(np.float64)
        i, a0, a1 = act(params, x)
        idx[r], cont[r, 0], cont[r, 1] = i, a0, a1
    return idx, cont


__all__ = ["HEADS", "Network", "act", "batch_actions", "mlp_forward", "observation", "pack", "rl_policy_quote", "NO_PRICE"]
