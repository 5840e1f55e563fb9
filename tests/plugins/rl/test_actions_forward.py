"""Actions -> quotes (Python == numba), the compiled MLP forward == SB3's torch policy, backtest paths agree."""

from __future__ import annotations

import numpy as np
import pytest
from rl_helpers import env_data

from cmm_bt.components import NO_PRICE

from cmm_bt_plugins.rl.actions import (
    FLATTEN,
    HAS_ASK,
    HAS_BID,
    ActionMap,
    continuous_quotes,
    continuous_quotes_nb,
    discrete_quotes,
    discrete_quotes_nb,
)
from cmm_bt_plugins.rl.config import SPOONER_GRID, EnvParams


def test_python_and_numba_action_maps_agree():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        bb = int(rng.integers(90, 110))
        ba = bb + int(rng.integers(1, 4))
        pos = float(rng.integers(-5, 6))
        b, a = (int(x) for x in rng.integers(-2, 6, 2))
        flags = int(rng.integers(0, 8))
        args = (b, a, flags, bb, ba, pos, 1.0, 4.0)
        assert discrete_quotes(*args) == discrete_quotes_nb(*args)
        x, y = (float(v) for v in rng.uniform(-1.3, 1.3, 2))
        args = (x, y, 0, 7, bb, ba, pos, 1.0, 4.0)
        assert continuous_quotes(*args) == continuous_quotes_nb(*args)


def test_action_semantics():
    # join the touch, one tick behind, no bid, flatten a long position at the bid
    assert discrete_quotes(0, 0, HAS_BID | HAS_ASK, 100, 102, 0.0, 1.0, 5.0) == (100, 1.0, 102, 1.0)
    assert discrete_quotes(1, 2, HAS_BID | HAS_ASK, 100, 102, 0.0, 1.0, 5.0) == (99, 1.0, 104, 1.0)
    assert discrete_quotes(0, 0, HAS_ASK, 100, 102, 0.0, 1.0, 5.0) == (NO_PRICE, 0.0, 102, 1.0)
    assert discrete_quotes(0, 0, FLATTEN, 100, 102, 3.0, 1.0, 5.0) == (NO_PRICE, 0.0, 100, 3.0)
    assert discrete_quotes(0, 0, FLATTEN, 100, 102, -2.0, 1.0, 5.0) == (102, 2.0, NO_PRICE, 0.0)
    assert discrete_quotes(0, 0, FLATTEN, 100, 102, 0.0, 1.0, 5.0) == (NO_PRICE, 0.0, NO_PRICE, 0.0)
    # improving offsets stay passive; the position limit drops the side that would pass it
    assert discrete_quotes(-3, -3, HAS_BID | HAS_ASK, 100, 101, 0.0, 1.0, 5.0)[::2] == (100, 101)
    assert discrete_quotes(0, 0, HAS_BID | HAS_ASK, 100, 101, 5.0, 1.0, 5.0) == (NO_PRICE, 0.0, 101, 1.0)
    # continuous: -1 -> lo, +1 -> hi, nearest tick
    assert continuous_quotes(-1.0, 1.0, 0, 4, 100, 101, 0.0, 1.0, 5.0) == (100, 1.0, 105, 1.0)
    assert continuous_quotes(0.0, 0.2, 0, 4, 100, 101, 0.0, 1.0, 5.0) == (98, 1.0, 103, 1.0)
    m = ActionMap.from_params(EnvParams(), 1.0, 10.0)
    assert m.n == len(SPOONER_GRID) == 10 and m.has_flatten
    assert m.labels()[:2] == ["[0, 0]", "[1, 1]"] and m.labels()[-1] == "flatten"


def _models(data):
    """Untrained SB3 models (random weights) of every algorithm the action space allows."""
    from stable_baselines3 import A2C, DQN, PPO, SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    from cmm_bt_plugins.rl.env import MarketMakingEnv

    vec = DummyVecEnv([lambda: MarketMakingEnv(data)])
    kw = {"device": "cpu", "seed": 0, "policy_kwargs": {"net_arch": [32, 16]}}
    if data.actions.kind == "discrete":
        return {"ppo": PPO("MlpPolicy", vec, **kw), "a2c": A2C("MlpPolicy", vec, **kw), "dqn": DQN("MlpPolicy", vec, **kw)}
    return {"ppo": PPO("MlpPolicy", vec, **kw), "sac": SAC("MlpPolicy", vec, learning_starts=10, **kw)}


@pytest.mark.parametrize("actions", ["discrete", "continuous"])
def test_compiled_forward_acts_like_the_torch_policy(synth, actions):
    from cmm_bt_plugins.rl import algorithms as A
    from cmm_bt_plugins.rl.forward import Network, batch_actions, pack

    data, _ = env_data(synth, "validation", actions=actions, episode_length_s=5)
    rng = np.random.default_rng(1)
    rows = rng.integers(0, len(data.replay), 4000)
    d = data.features.shape[1]
    obs = np.zeros((rows.size, d + 2), np.float32)
    obs[:, :d] = data.features[rows]
    obs[:, d] = rng.integers(-10, 11, rows.size) / 10
    obs[:, d + 1] = rng.uniform(0, 1, rows.size)
    classes = {"ppo": A.PPO, "a2c": A.A2C, "dqn": A.DQN, "sac": A.SAC}
    for name, model in _models(data).items():
        if name == "ppo" and actions == "continuous":  # a spread-out Gaussian mean, so clipping is exercised
            with __import__("torch").no_grad():
                model.policy.action_net.weight.mul_(20.0)
        algo = classes[name](classes[name].Config(env={"actions": actions}))
        modules, head = algo.actor(model)
        net = Network.from_modules(modules, head)
        idx, cont = batch_actions(pack(net, data.actions, d), obs)
        want, _ = model.predict(obs, deterministic=True)
        if actions == "discrete":
            assert np.array_equal(idx, want), name
            assert len(np.unique(want)) > 1, name
        else:
            assert np.allclose(cont, want, rtol=0, atol=2e-6), name
            got = [continuous_quotes(*c, 0, 5, 100, 101, 0.0, 1.0, 10.0) for c in cont]
            ref = [continuous_quotes(*c, 0, 5, 100, 101, 0.0, 1.0, 10.0) for c in want.astype(np.float64)]
            assert np.mean([g == r for g, r in zip(got, ref)]) > 0.999, name
        assert np.allclose(net.forward(obs)[:, :2], _torch_out(model, name, obs)[:, :2], atol=1e-5), name


def _torch_out(model, name, obs):
    import torch

    with torch.no_grad():
        x = torch.as_tensor(obs)
        p = model.policy
        if name == "dqn":
            return p.q_net(x).numpy()
        if name == "sac":
            return p.actor.mu(p.actor.latent_pi(x)).numpy()
        return p.action_net(p.mlp_extractor.forward_actor(x)).numpy()
