"""The market-making environment: a ``gymnasium.Env`` whose step is one decision step of our engine.

There is no second simulator: :class:`MarketMakingEnv` drives the engine's kernel through
:class:`cmm_bt.engine.stepping.Stepper` (the kernel entry points ``step`` / ``advance`` / ``quote`` /
``end_episode``, called as ``run_backtest`` calls them), with the strategy's engine settings
(latencies, queue model, fees, position limit, flattening at the episode end).

* **Observation** (float32 Box with finite bounds): the standardised feature window of the step
  (precomputed for the whole split, :mod:`cmm_bt_plugins.rl.observations`), ``q / limit`` (the locally
  known position, clipped to [-1, 1]) and the fraction of the episode left.
* **Action**: ``Discrete(len(grid))`` or ``Box(-1, 1, (2,))``, turned into quotes by
  :mod:`cmm_bt_plugins.rl.actions`.
* **Reward** of a step: ``pnl = Δ(cash + q · exchange mid · tick value)`` over the step, fees included,
  in ticks x order_qty or currency; ``inventory-penalty`` subtracts ``φ (q / order_qty)² Δt``
  (``q`` after the step), ``dampened`` subtracts ``η max(0, q Δmid)`` (``q`` held during the step).
  The last step's reward includes the episode close (cancel, flatten), so under ``pnl`` (currency)
  the rewards of an episode add up to the engine's episode PnL.
* **Episodes** (``mode="random"``): ``episode_steps`` decision steps starting at a uniformly drawn
  grid step of the split's sessions (``reset(seed=...)`` reproducible).  ``mode="sequential"``: the
  replay's own episodes in order (the engine's episodes when the replay uses the engine's settings).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cmm_bt.engine import kernel as K
from cmm_bt.engine.stepping import Replay

from cmm_bt_plugins.rl.actions import ActionMap
from cmm_bt_plugins.rl.observations import observation_bounds


@dataclass
class EnvData:
    """What every environment over one split shares (read-only).

    :ivar replay: the split's grid, episodes and market snapshots.
    :ivar features: standardised feature windows, float32 ``[len(replay), W * F]``.
    :ivar actions: the action map.
    :ivar reward: ``pnl``, ``inventory-penalty`` or ``dampened``; ``phi`` / ``eta`` their weights.
    :ivar unit: currency per reward unit.
    :ivar episode_steps: decision steps of a random-start episode.
    :ivar starts: grid steps where a random-start episode may begin.
    """

    replay: Replay
    features: np.ndarray
    actions: ActionMap
    reward: str
    phi: float
    eta: float
    unit: float
    clip: float
    episode_steps: int
    starts: np.ndarray

    @property
    def dt_s(self) -> float:
        return self.replay.config.decision_interval_ns / 1e9


def random_starts(replay: Replay, episode_steps: int) -> np.ndarray:
    """Grid steps ``k`` whose next ``episode_steps`` steps (and their end) lie inside one episode of ``replay``."""
    dt = replay.config.decision_interval_ns
    out = []
    for _, e, k0, k1 in replay.episodes:
        last = k1 - episode_steps  # k + L <= k1
        if last < k0:
            continue
        ks = np.arange(k0, last + 1, dtype=np.int64)
        ks = ks[replay.times[ks] + episode_steps * dt <= e]
        out.append(ks)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


class MarketMakingEnv(gym.Env):
    """One agent quoting through the engine (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(self, data: EnvData, mode: str = "random"):
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be 'random' or 'sequential', not {mode!r}")
        if mode == "random" and data.starts.size == 0:
            raise ValueError("no session is long enough for one episode")
        self.data = data
        self.mode = mode
        d = data.features.shape[1]
        self._d = d
        low, high = observation_bounds(d, data.clip)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        if data.actions.kind == "discrete":
            self.action_space = spaces.Discrete(data.actions.n)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._stepper = data.replay.stepper()
        self._quote = data.actions.python_quoter()
        self._times = data.replay.times.tolist()
        self._inst = data.replay.instrument
        self._inv_unit = 1.0 / data.unit
        self._limit = data.actions.limit
        self._qty = data.actions.qty
        self._pen = {"pnl": 0, "inventory-penalty": 1, "dampened": 2}[data.reward]
        self._phi_dt = data.phi * data.dt_s
        self._next_episode = 0
        self._view = None
        self.episode_pnl = 0.0  # currency, of the current (or last) episode

    # ------------------------------------------------------------------------------- gymnasium
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        r = self.data.replay
        if options and "episode" in options:
            s, e, k0, k1 = r.episodes[int(options["episode"])]
        elif self.mode == "random":
            k0 = int(self.data.starts[int(self.np_random.integers(self.data.starts.size))])
            k1 = k0 + self.data.episode_steps
            s = self._times[k0]
            e = s + self.data.episode_steps * r.config.decision_interval_ns
        else:
            if seed is not None:
                self._next_episode = 0
            s, e, k0, k1 = r.episodes[self._next_episode % len(r.episodes)]
            self._next_episode += 1
        self._s, self._span = int(s), float(e - s)
        st = self._stepper
        self._view = st.begin(int(k0), int(k1), int(e))
        self._eq = st.equity()
        self._mid = st.exchange_mid()
        self._pos = 0.0
        self.episode_pnl = 0.0
        return self._obs(int(k0), self._times[k0], self._view[4]), {}

    def step(self, action):
        st = self._stepper
        bb, ba, _, _, lpos = self._view
        bp, bq, ap, aq = self._quote(action, bb, ba, lpos)
        k = st.k
        if k + 1 < st.k_end:
            self._view = st.step(bp, bq, ap, aq)
            done = False
            k += 1
            t = self._times[k]
        else:
            st.finish(bp, bq, ap, aq)
            done = True
            t = st.end_ns
        fl = st.ex.fl
        pos = float(fl[K.A_POS])
        mid = st.ex.exchange_mid()
        if mid != mid:  # an exchange side is empty: keep the last mark
            mid = self._mid
        eq = float(fl[K.A_CASH]) + (self._inst.value(pos, mid) if pos else 0.0)
        pnl = eq - self._eq
        r = pnl * self._inv_unit
        if self._pen == 1:
            q = pos / self._qty
            r -= self._phi_dt * q * q
        elif self._pen == 2:
            spec = self._inst.value_change(self._pos, self._mid, mid) * self._inv_unit
            if spec > 0.0:
                r -= self.data.eta * spec
        self._eq, self._mid, self._pos = eq, mid, pos
        self.episode_pnl += pnl
        obs = self._obs(k, t, self._view[4])
        return obs, r, done, False, {"episode_pnl": self.episode_pnl} if done else {}

    # --------------------------------------------------------------------------------- helpers
    def _obs(self, k: int, t: int, lpos: float) -> np.ndarray:
        d = self._d
        obs = np.empty(d + 2, np.float32)
        obs[:d] = self.data.features[k]
        p = lpos / self._limit
        obs[d] = min(max(p, -1.0), 1.0)
        prog = (t - self._s) / self._span
        obs[d + 1] = 1.0 - min(max(prog, 0.0), 1.0)
        return obs

    @property
    def stepper(self):
        return self._stepper


def make_vec_env(data: EnvData, n_envs: int, kind: str = "dummy", monitor: bool = True):
    """``n_envs`` environments over ``data`` as an SB3 VecEnv (``dummy``: in process; ``subproc``: one process each)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    def factory():
        env = MarketMakingEnv(data)
        return Monitor(env) if monitor else env

    fns = [factory for _ in range(n_envs)]
    return SubprocVecEnv(fns) if kind == "subproc" else DummyVecEnv(fns)


__all__ = ["EnvData", "MarketMakingEnv", "make_vec_env", "random_starts"]
