"""Helpers of the RL tests: environments and small trainings on the synthetic market."""

from __future__ import annotations

import numpy as np

from cmm_bt_plugins.rl.config import EnvParams
from cmm_bt_plugins.rl.training import fit_normaliser, split_env_data, validation_data

#: A small PPO run: 20-second episodes, two environments, a few thousand steps.
SMALL_PPO = {
    "total_timesteps": 4096, "n_envs": 2, "eval_every": 2048, "net_arch": [32, 32], "progress": False,
    "env": {"episode_length_s": 20, "reward": "inventory-penalty", "inventory_penalty": 0.5, "position_limit": 3},
    "hyper": {"n_steps": 128, "batch_size": 64, "n_epochs": 10, "learning_rate": 0.001},
}


def env_data(synth, split: str = "train", *, sessions: bool = True, engine=None, market=None, **env):
    """EnvData of ``split`` with EnvParams(**env), the normaliser fitted on train."""
    params = EnvParams(**env)
    engine = engine or synth.engine
    market = market or synth.market
    norm = fit_normaliser(market, engine, synth.run.splits["train"], params)
    return split_env_data(market, engine, synth.run.splits[split], params, norm, sessions=sessions), norm


def train_small(synth, algo_cls, params: dict, *, seed: int = 0, market=None):
    """Train ``algo_cls`` with ``params`` on the synthetic market (or ``market``)."""
    from cmm_bt_plugins.rl.training import train

    algo = algo_cls(algo_cls.Config(**params))
    market = market or synth.market
    norm = fit_normaliser(market, synth.engine, synth.run.splits["train"], algo.config.env)
    data = split_env_data(market, synth.engine, synth.run.splits["train"], algo.config.env, norm)
    val = validation_data(market, synth.engine, synth.run.splits["validation"], algo.config.env, norm)
    return train(algo, data, val, norm, seed=seed)


def weights(policy) -> list[np.ndarray]:
    return [a for w, b, _ in policy.network.layers for a in (w, b)]
