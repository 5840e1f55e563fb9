"""The environment: the checkers, observations, reward accounting against the engine, episodes, vectorisation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rl_helpers import env_data

from cmm_bt.components import DecisionState, ExecutionPolicy, Quotes
from cmm_bt.engine.loop import run_backtest

from cmm_bt_plugins.rl.env import MarketMakingEnv, make_vec_env


@pytest.mark.parametrize("actions", ["discrete", "continuous"])
def test_gymnasium_and_sb3_env_checkers_pass(synth, actions):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    data, _ = env_data(synth, actions=actions, episode_length_s=5)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render.*")  # no render modes
        check_env(MarketMakingEnv(data), skip_render_check=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(MarketMakingEnv(data), warn=True)
    assert not [w for w in caught if "stable_baselines3" in str(w.filename)], [str(w.message) for w in caught]


def test_observation_is_the_standardised_window_position_and_time_left(synth):
    data, norm = env_data(synth, episode_length_s=30, window=3, levels=2)
    env = MarketMakingEnv(data)
    assert env.observation_space.shape == (3 * (4 * 2 + 5) + 2,)
    assert np.all(np.isfinite(env.observation_space.low)) and np.all(np.isfinite(env.observation_space.high))
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    d = data.features.shape[1]
    for i in range(600):
        st = env.stepper
        assert obs in env.observation_space
        k = min(st.k, st.k_end - 1)
        assert np.array_equal(obs[:d], data.features[k])
        obs, r, done, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        assert np.isfinite(r) and not trunc
        if done:
            assert obs[-1] == 0.0  # no time left
            obs, _ = env.reset()
        else:
            assert obs[-2] == np.float32(min(max(env._view[4] / data.actions.limit, -1), 1))
            assert obs[-1] == np.float32(1 - (data.replay.times[st.k] - env._s) / env._span)


def test_reset_seed_is_reproducible_and_starts_are_inside_sessions(synth):
    data, _ = env_data(synth, episode_length_s=60)
    env = MarketMakingEnv(data)
    a, _ = env.reset(seed=7)
    k7 = env.stepper.k
    b, _ = env.reset(seed=7)
    assert np.array_equal(a, b) and env.stepper.k == k7
    starts = set()
    for seed in range(40):
        env.reset(seed=seed)
        k0, k1, e = env.stepper.k, env.stepper.k_end, env.stepper.end_ns
        starts.add(k0)
        assert k1 - k0 == data.episode_steps == 600
        ep = data.replay.episode_ids[k0]
        assert data.replay.episode_ids[k1 - 1] == ep
        s_ep, e_ep, _, _ = data.replay.episodes[ep]
        assert s_ep <= data.replay.times[k0] and e <= e_ep
        t = data.replay.times
        assert t[k0] >= synth.run.splits["train"][0] and e <= synth.run.splits["train"][1]
    assert len(starts) > 30


class _Replayed(ExecutionPolicy):
    """Quotes the environment's action for each step, with the environment's own action map."""

    name = "replayed"

    def __init__(self, actions, quoter):
        super().__init__(self.Config())
        self.actions, self.quoter = actions, quoter

    def quote(self, s: DecisionState) -> Quotes:
        from cmm_bt.components import NO_PRICE

        bp, bq, ap, aq = self.quoter(self.actions[s.step], s.best_bid, s.best_ask, s.position)
        return Quotes(None if bp == NO_PRICE else bp, bq, None if ap == NO_PRICE else ap, aq)


@pytest.mark.parametrize("actions", ["discrete", "continuous"])
def test_pnl_rewards_add_up_to_the_engines_episode_pnl(synth, actions):
    """Sequential episodes of the engine's own grid (validation split, fees on): the pnl rewards of each
    episode sum to run_backtest's episode PnL with the same quotes; the penalties are what they say."""
    engine = synth.engine.model_copy(update={"maker_fee": -0.0001, "taker_fee": 0.0003, "position_limit": 4.0})
    span = synth.run.splits["validation"]
    data, _ = env_data(synth, "validation", sessions=False, engine=engine, actions=actions, reward="pnl",
                       reward_unit="currency")
    n = len(data.replay)
    rng = np.random.default_rng(3)
    acts = list(rng.integers(data.actions.n, size=n)) if actions == "discrete" else list(rng.uniform(-1, 1, (n, 2)).astype(np.float32))
    out = run_backtest(synth.market, _Replayed(acts, data.actions.python_quoter()), engine, start_ns=span[0], end_ns=span[1])
    assert len(out.episodes) == len(data.replay.episodes) >= 2 and len(out.fills) > 50

    env = MarketMakingEnv(data, mode="sequential")
    pen = {k: MarketMakingEnv(v, mode="sequential") for k, v in (
        ("inventory-penalty", env_data(synth, "validation", sessions=False, engine=engine, actions=actions,
                                       reward="inventory-penalty", inventory_penalty=0.3, reward_unit="currency")[0]),
        ("dampened", env_data(synth, "validation", sessions=False, engine=engine, actions=actions, reward="dampened",
                              dampening=0.7, reward_unit="currency")[0]))}
    dt = engine.decision_interval_ms / 1000
    tv = synth.market.instrument.tick_value
    for ep, row in enumerate(out.episodes.itertuples()):
        env.reset(options={"episode": ep})
        for p in pen.values():
            p.reset(options={"episode": ep})
        total, done = 0.0, False
        pos_prev, mid_prev = 0.0, env.stepper.exchange_mid()
        while not done:
            a = acts[env.stepper.k]
            _, r, done, _, info = env.step(a)
            pos, mid = env.stepper.position, env.stepper.exchange_mid()
            _, r_inv, _, _, _ = pen["inventory-penalty"].step(a)
            _, r_damp, _, _, _ = pen["dampened"].step(a)
            assert r_inv == pytest.approx(r - 0.3 * pos * pos * dt, abs=1e-12)
            assert r_damp == pytest.approx(r - 0.7 * max(0.0, pos_prev * (mid - mid_prev) * tv), abs=1e-12)
            pos_prev, mid_prev = pos, mid
            total += r
        assert total == pytest.approx(row.pnl, rel=1e-9, abs=1e-9)
        assert info["episode_pnl"] == pytest.approx(row.pnl, rel=1e-9, abs=1e-9)
        assert env.stepper.n_fills == row.fills


def test_tick_unit_scales_the_currency_reward(synth):
    cur, _ = env_data(synth, episode_length_s=10, reward_unit="currency")
    tick, _ = env_data(synth, episode_length_s=10, reward_unit="tick")
    a, b = MarketMakingEnv(cur), MarketMakingEnv(tick)
    a.reset(seed=2)
    b.reset(seed=2)
    unit = synth.market.instrument.tick_value * synth.engine.order_qty
    for i in range(300):
        ra, rb = a.step(i % 10)[1], b.step(i % 10)[1]
        assert rb == pytest.approx(ra / unit, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kind", ["dummy", "subproc"])
def test_vectorised_environments(synth, kind):
    data, _ = env_data(synth, episode_length_s=2)
    vec = make_vec_env(data, 3, kind)
    try:
        vec.seed(5)
        obs = vec.reset()
        assert obs.shape == (3, data.features.shape[1] + 2)
        dones = 0
        for _ in range(45):
            obs, rew, done, infos = vec.step(np.array([1, 9, 4]))
            dones += int(done.sum())
            assert np.all(np.isfinite(rew))
        assert dones == 6  # 20-step episodes, 45 steps, 3 environments
        assert all("episode" in i for i, d in zip(infos, done) if d) or not done.any()
    finally:
        vec.close()
