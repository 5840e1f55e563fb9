"""The RL environment's speed: raw environment steps/s with random actions, and SB3 PPO training steps/s.

Raw steps: one ``MarketMakingEnv`` (the engine's kernel behind every step, observations, rewards,
resets at episode ends) stepped with uniformly random actions in this process, one thread; the goal is
>= 50,000 steps/s.  Training: ``stable_baselines3.PPO`` (MlpPolicy [64, 64]) on ``--n-envs``
environments (DummyVecEnv, one torch thread) for ``--timesteps`` steps, without validation
evaluations.  The last line: ``strategy dataset raw_steps_per_s train_steps_per_s``.

    python benchmarks/rl_env.py                        # strategies/rl-ppo.yaml on its dataset
    python benchmarks/rl_env.py --dataset cffex-if
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default=str(ROOT / "strategies" / "rl-ppo.yaml"))
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--steps", type=int, default=300_000, help="raw environment steps timed")
    ap.add_argument("--timesteps", type=int, default=20_000, help="PPO training timesteps timed")
    ap.add_argument("--n-envs", type=int, default=4)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from rich.console import Console

    from cmm_bt.api import Session, prepare_run
    from cmm_bt.engine.config import EngineConfig

    from cmm_bt_plugins.rl.env import MarketMakingEnv
    from cmm_bt_plugins.rl.training import fit_normaliser, split_env_data

    session = Session.start(console=Console(quiet=True))
    run, market = prepare_run(session, Path(a.strategy), dataset=a.dataset)
    engine = EngineConfig(**run.strategy.engine)
    algo = run.registry.create("rl-algorithm", run.strategy.section("rl").name, run.strategy.section("rl").params)
    env_p = algo.config.env
    t = time.perf_counter()
    norm = fit_normaliser(market, engine, run.splits["train"], env_p)
    data = split_env_data(market, engine, run.splits["train"], env_p, norm)
    print(f"setup             {time.perf_counter() - t:.2f} s: {len(data.replay):,} training steps, "
          f"{data.features.shape[1] + 2} observation values, episodes of {data.episode_steps} steps")

    env = MarketMakingEnv(data)
    rng = np.random.default_rng(0)
    n_act = data.actions.n
    discrete = data.actions.kind == "discrete"
    acts = rng.integers(0, n_act, a.steps) if discrete else rng.uniform(-1, 1, (a.steps, 2)).astype(np.float32)
    env.reset(seed=0)
    for i in range(2000):  # warm-up
        if env.step(acts[i])[2]:
            env.reset()
    env.reset(seed=1)
    episodes = 0
    t = time.perf_counter()
    for i in range(a.steps):
        if env.step(acts[i])[2]:
            env.reset()
            episodes += 1
    raw_s = time.perf_counter() - t
    raw = a.steps / raw_s
    print(f"raw environment   {a.steps:,} steps in {raw_s:.2f} s = {raw:,.0f} steps/s ({1e6 / raw:.1f} us per step, "
          f"{episodes} resets)")

    import torch
    from stable_baselines3 import PPO

    from cmm_bt_plugins.rl.env import make_vec_env

    torch.set_num_threads(1)
    vec = make_vec_env(data, a.n_envs)
    model = PPO("MlpPolicy", vec, seed=0, device="cpu", verbose=0, n_steps=512, batch_size=256, n_epochs=5,
                policy_kwargs={"net_arch": [64, 64]})
    model.learn(total_timesteps=2048)  # warm-up
    t = time.perf_counter()
    model.learn(total_timesteps=a.timesteps, reset_num_timesteps=False)
    train_s = time.perf_counter() - t
    train = a.timesteps / train_s
    vec.close()
    print(f"SB3 PPO training  {a.timesteps:,} timesteps on {a.n_envs} envs in {train_s:.2f} s = {train:,.0f} steps/s")
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"load average      {' '.join(load)}")
    print(f"strategy={Path(a.strategy).stem} dataset={run.dataset.name} raw_steps_per_s={raw:.0f} "
          f"train_steps_per_s={train:.0f} goal_raw=50000 {'ok' if raw >= 50_000 else 'below_goal'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
