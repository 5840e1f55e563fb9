"""Training: the environments of the training split, SB3's learn loop, validation-based model selection.

* :func:`split_env_data` builds what the environments of one split share: the engine replay of the
  split's sessions, the standardised feature windows on its grid and the random episode starts.
* :func:`validation_data` is the validation split on the *engine's* grid (its episodes, its settings):
  a model is evaluated (:func:`evaluate`) by running the compiled policy through every validation
  episode in order, which is the engine's backtest of that split (the pnl rewards of an episode add up
  to the engine's episode PnL), so "validation PnL" is what ``cmm-bt run -o split=validation`` reports
  for that policy, and "validation reward" is the training objective on unseen data.
* :func:`train` runs SB3 (seeded, one torch thread) with a callback that evaluates every
  ``eval_every`` timesteps (and at the start and the end), keeps the best policy (``select_metric``:
  the mean validation reward, or the validation PnL), records the curve
  and drives the progress display.

The test split is never read here: the environments see the training split, model selection the
validation split (``tests/plugins/rl/test_training.py`` changes the test split's data and gets the same
policy).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt.data.schema import CLEAR, MarketData
from cmm_bt.engine.config import EngineConfig
from cmm_bt.errors import ConfigError

from cmm_bt_plugins.rl.actions import ActionMap
from cmm_bt_plugins.rl.env import EnvData, MarketMakingEnv, make_vec_env, random_starts
from cmm_bt_plugins.rl.forward import Network, act, pack
from cmm_bt_plugins.rl.observations import Normaliser, feature_windows, raw_features
from cmm_bt_plugins.rl.products import CURVE_COLUMNS, TrainedPolicy

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt_plugins.rl.algorithms import RLAlgorithm
    from cmm_bt_plugins.rl.config import EnvParams


# -------------------------------------------------------------------------------- environments
def episode_steps(env: "EnvParams", engine: EngineConfig) -> int:
    """Decision steps of a training episode (``env.episode_length_s``, else the engine's fixed episode length, else 300 s)."""
    length = env.episode_length_s
    if length is None:
        length = engine.episode_length_s if engine.episode_mode == "fixed" else 300.0
    return max(1, int(round(length * 1e9 / engine.decision_interval_ns)))


def sizing(env: "EnvParams", engine: EngineConfig) -> tuple[float, float]:
    return (float(env.order_qty or engine.order_qty), float(env.position_limit or engine.position_limit))


def reward_unit(env: "EnvParams", market: MarketData, qty: float) -> float:
    """Currency per reward unit: 1, or a tick's value for ``qty`` (inverse contracts: at the median traded or
    quoted price of ``market``)."""
    if env.reward_unit == "currency":
        return 1.0
    inst = market.instrument
    if not inst.inverse:
        return float(inst.tick_value) * qty
    ev = market.events
    prices = ev["price"].to_numpy()[ev["ev"].to_numpy() != CLEAR]
    return float(inst.tick_value_at(float(np.median(prices)))) * qty


def fit_normaliser(market: MarketData, engine: EngineConfig, span: tuple[int, int], env: "EnvParams") -> Normaliser:
    """Feature statistics of the training split's decision grid."""
    from cmm_bt.engine.loop import decision_grid

    times, ids = decision_grid(market, engine, *span)
    if times.size == 0:
        raise ConfigError("the training split has no decision step", key="split")
    fs = raw_features(market, times, ids, env.window, env.levels)
    return Normaliser.fit(fs.steps[env.window - 1:], fs.book_valid, env.window, env.levels, env.clip_obs)


def split_env_data(market: MarketData, engine: EngineConfig, span: tuple[int, int], env: "EnvParams", norm: Normaliser,
                   *, sessions: bool = True) -> EnvData:
    """The environments' shared data over ``span``: a replay of its sessions (``sessions``) or of the engine's
    episodes, the standardised feature windows on its grid, the random episode starts."""
    from cmm_bt.engine.stepping import Replay

    cfg = engine.model_copy(update={"episode_mode": "session"}) if sessions else engine
    replay = Replay(market, cfg, *span)
    if len(replay) == 0:
        raise ConfigError("the split has no decision step", key="split")
    fs = raw_features(market, replay.times, replay.episode_ids, env.window, env.levels)
    qty, limit = sizing(env, engine)
    steps = episode_steps(env, engine)
    return EnvData(replay=replay, features=feature_windows(fs, norm), actions=ActionMap.from_params(env, qty, limit),
                   reward=env.reward, phi=env.inventory_penalty, eta=env.dampening, unit=reward_unit(env, market, qty),
                   clip=env.clip_obs, episode_steps=steps, starts=random_starts(replay, steps))


# ------------------------------------------------------------------------------------ validation
def validation_data(market: MarketData, engine: EngineConfig, span: tuple[int, int], env: "EnvParams",
                    norm: Normaliser) -> EnvData:
    """The validation split as environment data over the *engine's* episodes (its grid and settings)."""
    try:
        return split_env_data(market, engine, span, env, norm, sessions=False)
    except ConfigError:
        raise ConfigError("the validation split has no decision step (model selection needs one)", key="split") from None


def evaluate(params: np.ndarray, env: MarketMakingEnv) -> dict[str, float]:
    """The compiled policy ``params`` on every episode of ``env`` (sequential, the engine's validation episodes).

    The pnl of an episode is the engine's episode PnL for these quotes (``tests/plugins/rl/test_env.py``):
    this is the backtest of the validation split.
    """
    discrete = env.data.actions.kind == "discrete"
    rewards, pnl, fills, max_pos = [], 0.0, 0, 0.0
    for ep in range(len(env.data.replay.episodes)):
        obs, _ = env.reset(options={"episode": ep})
        total, done = 0.0, False
        while not done:
            idx, a0, a1 = act(params, obs.astype(np.float64))
            obs, r, done, _, _ = env.step(idx if discrete else (a0, a1))
            total += r
            max_pos = max(max_pos, abs(env.stepper.position))
        rewards.append(total)
        pnl += env.episode_pnl
        fills += env.stepper.n_fills
    return {"validation_reward": float(np.mean(rewards)), "validation_pnl": float(pnl),
            "validation_fills": float(fills), "validation_max_abs_position": float(max_pos)}


# -------------------------------------------------------------------------------------- training
class _Progress:
    """The rich progress display of a training run."""

    def __init__(self, console: "Console | None", total: int, label: str, enabled: bool):
        self.enabled = enabled and console is not None
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("reward {task.fields[reward]}"), TextColumn("val PnL {task.fields[val]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task(label, total=total, reward="-", val="-")
        self.progress.start()

    def update(self, done: int, reward: float | None = None, val: float | None = None) -> None:
        if not self.enabled:
            return
        fields = {}
        if reward is not None and np.isfinite(reward):
            fields["reward"] = f"{reward:,.2f}"
        if val is not None:
            fields["val"] = f"{val:,.2f}"
        self.progress.update(self.task, completed=done, **fields)

    def stop(self) -> None:
        if self.enabled:
            self.progress.stop()


def _callback_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class Selection(BaseCallback):
        """Evaluates on validation every ``every`` timesteps, keeps the best policy, drives the progress display."""

        def __init__(self, evaluate, every: int, progress: _Progress, select: str, metric: str):
            super().__init__(verbose=0)
            self.evaluate, self.every, self.progress, self.select = evaluate, every, progress, select
            self.metric = f"validation_{metric}"
            self.rows: list[dict[str, Any]] = []
            self.best: tuple[float, int, dict] | None = None
            self.next_eval = every
            self.t0 = time.perf_counter()
            self.episodes = 0

        def train_reward(self) -> float:
            buf = self.model.ep_info_buffer
            return float(np.mean([e["r"] for e in buf])) if buf else float("nan")

        def run_eval(self) -> None:
            ts = int(self.num_timesteps)
            if self.rows and self.rows[-1]["timesteps"] == ts:
                return
            res = self.evaluate(self.model)
            row = {"timesteps": ts, "episodes": self.episodes, "train_reward_mean": self.train_reward(), **res,
                   "elapsed_s": time.perf_counter() - self.t0, "selected": False}
            self.rows.append(row)
            if self.select == "last" or self.best is None or res[self.metric] > self.best[0]:
                self.best = (res[self.metric], len(self.rows) - 1, copy.deepcopy(self.model.policy.state_dict()))
            self.progress.update(ts, row["train_reward_mean"], res["validation_pnl"])

        def _on_training_start(self) -> None:
            self.run_eval()

        def _on_step(self) -> bool:
            dones = self.locals.get("dones")
            if dones is not None:
                self.episodes += int(np.sum(dones))
            if self.num_timesteps >= self.next_eval:
                self.run_eval()
                self.next_eval = (self.num_timesteps // self.every + 1) * self.every
            elif self.n_calls % 64 == 0:
                self.progress.update(int(self.num_timesteps), self.train_reward())
            return True

    return Selection


def train(algo: "RLAlgorithm", data: EnvData, val: EnvData, norm: Normaliser, *, seed: int,
          console: "Console | None" = None, label: str = "rl-train") -> TrainedPolicy:
    """Train ``algo`` on the environments of ``data``; select on ``val`` (:func:`validation_data`); return the policy."""
    import io

    import stable_baselines3
    import torch
    from stable_baselines3.common.utils import set_random_seed

    cfg = algo.config
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    progress = _Progress(console, cfg.total_timesteps, label, cfg.progress)
    vec = None
    try:
        set_random_seed(seed)
        vec = make_vec_env(data, cfg.n_envs, cfg.vec_env)
        model = algo.build(vec, seed)
        n_features = data.features.shape[1]

        def network(m) -> Network:
            modules, head = algo.actor(m)
            return Network.from_modules(modules, head)

        val_env = MarketMakingEnv(val, mode="sequential")

        def evaluate_model(m) -> dict[str, float]:
            return evaluate(pack(network(m), data.actions, n_features), val_env)

        cb = _callback_class()(evaluate_model, cfg.eval_every, progress, cfg.select, cfg.select_metric)
        model.learn(total_timesteps=cfg.total_timesteps, callback=cb, progress_bar=False)
        cb.run_eval()
        _, best_row, state = cb.best
        model.policy.load_state_dict(state)
        cb.rows[best_row]["selected"] = True
        buf = io.BytesIO()
        model.save(buf)
        net = network(model)
        wall = time.perf_counter() - t0
    finally:
        progress.stop()
        torch.set_num_threads(threads)
        if vec is not None:
            vec.close()
    curve = pd.DataFrame(cb.rows, columns=CURVE_COLUMNS)
    sel = cb.rows[best_row]
    info = {
        "sb3_class": algo.sb3_name, "timesteps": int(model.num_timesteps), "episodes": int(cb.episodes),
        "selected_timestep": int(sel["timesteps"]), "selected_validation_pnl": float(sel["validation_pnl"]),
        "selected_validation_reward": float(sel["validation_reward"]), "select_metric": cfg.select_metric,
        "wall_s": wall, "seed": int(seed), "reward": data.reward, "episode_steps": int(data.episode_steps),
        "n_envs": int(cfg.n_envs), "stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
    }
    return TrainedPolicy(algo.name, buf.getvalue(), net, norm, data.actions, curve, info)


__all__ = ["episode_steps", "evaluate", "fit_normaliser", "split_env_data", "train", "validation_data"]
