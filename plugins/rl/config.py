"""The ``rl:`` section's options (pydantic; no heavy imports): the MDP, training and each algorithm's hyper-parameters.

See docs/rl.md for what every option means.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from cmm_bt.components import Params

#: One discrete action: ``[bid_offset, ask_offset]`` in ticks from the same-side best price of the local
#: book (0 joins the touch, 1 is one tick behind it, negative improves it; ``null``: no order on that
#: side), or ``"flatten"``: close the locally known position with a marketable order at the opposite touch.
GridEntry = Union[tuple[Union[int, None], Union[int, None]], Literal["flatten"]]

#: Spooner et al. (2018), Table 2: nine (bid, ask) quote pairs plus their market order that clears the
#: inventory.  Their offsets 1..5 are written here as 0..4 ticks from the touch (their 1 is ours 0).
SPOONER_GRID: tuple[GridEntry, ...] = (
    (0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (2, 0), (0, 2), (4, 1), (1, 4), "flatten",
)

MAX_OFFSET = 1000


class EnvParams(Params):
    """The Markov decision process: observation, actions, reward and episodes (docs/rl.md)."""

    window: int = Field(2, ge=1, le=64, description="Decision steps of market features in each observation (the window W of plugins/features/market.py).")
    levels: int = Field(3, ge=1, le=20, description="Book levels per side in each step's features (K; F = 4K + 5 features per step).")
    clip_obs: float = Field(10.0, gt=0, description="Standardised features are clipped to [-clip_obs, clip_obs] (the observation Box's finite bounds).")
    actions: Literal["discrete", "continuous"] = Field(
        "discrete", description="'discrete': one action per entry of `grid` (PPO, DQN, A2C); 'continuous': Box(-1, 1, (2,)) "
        "mapped to bid / ask offsets in [min_offset_ticks, max_offset_ticks] (PPO, A2C, SAC).")
    grid: list[GridEntry] = Field(
        default_factory=lambda: list(SPOONER_GRID),
        description="Discrete actions: [bid_offset, ask_offset] in ticks from the same-side touch (0 = join, null = no order "
        "on that side) or 'flatten' (close the position with a marketable order). Default: Spooner et al. 2018's nine "
        "quote pairs and their inventory-clearing order.")
    min_offset_ticks: int = Field(0, ge=0, le=MAX_OFFSET, description="Continuous actions: the offset of action -1, ticks from the touch.")
    max_offset_ticks: int = Field(5, ge=0, le=MAX_OFFSET, description="Continuous actions: the offset of action +1, ticks from the touch.")
    reward: Literal["pnl", "inventory-penalty", "dampened"] = Field(
        "pnl", description="'pnl': change of mark-to-market value (fees included); 'inventory-penalty': pnl - phi * q^2 * dt "
        "(mbt_gym's running inventory penalty); 'dampened': pnl - eta * max(0, q * dmid) (Spooner et al.'s asymmetric dampening).")
    inventory_penalty: float = Field(0.01, ge=0, description="phi of 'inventory-penalty': reward units per (position / order_qty)^2 per second.")
    dampening: float = Field(0.5, ge=0, description="eta of 'dampened': share of the speculative inventory gain q * dmid taken away.")
    reward_unit: Literal["tick", "currency"] = Field(
        "tick", description="'tick': rewards in ticks x order_qty (one tick earned on one order = 1.0, comparable across "
        "instruments); 'currency': in the instrument's currency (the engine's PnL).")
    episode_length_s: float | None = Field(
        None, gt=0, description="Length of a training episode, seconds; default: engine.episode_length_s when "
        "engine.episode_mode is 'fixed', else 300. Episodes start at random times inside the training split's sessions.")
    order_qty: float | None = Field(None, gt=0, description="Size of each quote; default: engine.order_qty.")
    position_limit: float | None = Field(None, gt=0, description="Inventory limit of the observation's q / limit and of the quotes "
                                         "(a side whose fill would pass it is not quoted); default: engine.position_limit.")

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: list) -> list:
        if len(grid) < 2:
            raise ValueError("needs at least two actions")
        seen = set()
        for i, entry in enumerate(grid):
            key = entry if entry == "flatten" else tuple(entry)
            if key in seen:
                raise ValueError(f"entry {i} {_show(entry)} is a duplicate")
            seen.add(key)
            if entry == "flatten":
                continue
            b, a = entry
            for off in (b, a):
                if off is not None and abs(off) > MAX_OFFSET:
                    raise ValueError(f"entry {i} {_show(entry)}: offsets must be within +-{MAX_OFFSET} ticks")
            if b is not None and a is not None and b + a < 0:
                raise ValueError(f"entry {i} {_show(entry)} is a crossed quote: at a one-tick spread its bid would be at or "
                                 "above its ask (bid_offset + ask_offset must be >= 0)")
        return grid

    @model_validator(mode="after")
    def _check_offsets(self) -> "EnvParams":
        if self.max_offset_ticks < self.min_offset_ticks:
            raise ValueError(f"max_offset_ticks ({self.max_offset_ticks}) is below min_offset_ticks ({self.min_offset_ticks})")
        return self


def _show(entry) -> str:
    return "'flatten'" if entry == "flatten" else "[" + ", ".join("null" if v is None else str(v) for v in entry) + "]"


class DiscreteEnvParams(EnvParams):
    """The MDP of an algorithm that needs discrete actions."""

    @field_validator("actions")
    @classmethod
    def _discrete(cls, v: str) -> str:
        if v != "discrete":
            raise ValueError(f"this algorithm needs discrete actions (got {v!r}; continuous actions need ppo, a2c or sac)")
        return v


class ContinuousEnvParams(EnvParams):
    """The MDP of an algorithm that needs continuous actions."""

    actions: Literal["discrete", "continuous"] = Field("continuous", description=EnvParams.model_fields["actions"].description)

    @field_validator("actions")
    @classmethod
    def _continuous(cls, v: str) -> str:
        if v != "continuous":
            raise ValueError(f"this algorithm needs continuous actions (got {v!r}; discrete actions need ppo, dqn or a2c)")
        return v


class TrainParams(Params):
    """Options every algorithm shares: budget, vectorised environments, model selection, network."""

    total_timesteps: int = Field(100_000, gt=0, description="Environment steps of training (all environments together).")
    n_envs: int = Field(4, ge=1, le=64, description="Environments stepped together (SB3 vectorised environment).")
    vec_env: Literal["dummy", "subproc"] = Field("dummy", description="'dummy': the environments in this process, one after "
                                                  "another (DummyVecEnv); 'subproc': one process each (SubprocVecEnv).")
    eval_every: int = Field(10_000, gt=0, description="Timesteps between two evaluations on the validation split (and one at the end).")
    select: Literal["best", "last"] = Field("best", description="'best': keep the policy of the evaluation with the highest "
                                            "select_metric; 'last': the policy at the end of training.")
    select_metric: Literal["reward", "pnl"] = Field("reward", description="What 'best' means: the mean validation episode "
                                                    "reward (the training objective) or the validation PnL.")
    net_arch: list[int] = Field(default_factory=lambda: [64, 64], min_length=1, max_length=8,
                                description="Hidden layer sizes of the policy (and value / Q) network.")
    activation: Literal["tanh", "relu"] | None = Field(None, description="Hidden activation; default: the algorithm's (tanh for "
                                                         "PPO / A2C, relu for DQN / SAC).")
    progress: bool = Field(True, description="Show the training progress (timesteps, mean episode reward, validation PnL, ETA).")
    env: EnvParams = Field(default_factory=EnvParams, description="The Markov decision process (docs/rl.md).")

    @field_validator("net_arch")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(n < 1 or n > 4096 for n in v):
            raise ValueError("layer sizes must be between 1 and 4096")
        return v


# ------------------------------------------------------------------------------ hyper-parameters
class PPOHyper(Params):
    """stable_baselines3.PPO arguments (SB3's names)."""

    learning_rate: float = Field(3e-4, gt=0, description="Adam step size.")
    n_steps: int = Field(512, ge=2, description="Steps per environment between two updates (rollout length).")
    batch_size: int = Field(256, ge=2, description="Minibatch size.")
    n_epochs: int = Field(5, ge=1, description="Passes over each rollout.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(0.95, gt=0, le=1, description="GAE lambda.")
    clip_range: float = Field(0.2, gt=0, description="PPO clipping of the probability ratio.")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient clipping.")


class A2CHyper(Params):
    """stable_baselines3.A2C arguments (SB3's names)."""

    learning_rate: float = Field(7e-4, gt=0, description="RMSprop step size.")
    n_steps: int = Field(16, ge=1, description="Steps per environment between two updates.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(1.0, gt=0, le=1, description="GAE lambda (1: plain advantage).")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient clipping.")


class DQNHyper(Params):
    """stable_baselines3.DQN arguments (SB3's names)."""

    learning_rate: float = Field(5e-4, gt=0, description="Adam step size.")
    buffer_size: int = Field(100_000, ge=100, description="Replay buffer size (transitions).")
    learning_starts: int = Field(2_000, ge=0, description="Transitions collected before the first update.")
    batch_size: int = Field(64, ge=1, description="Minibatch size.")
    tau: float = Field(1.0, gt=0, le=1, description="Target network update coefficient (1: hard update).")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    train_freq: int = Field(4, ge=1, description="Environment steps between two updates.")
    gradient_steps: int = Field(1, ge=1, description="Gradient steps per update.")
    target_update_interval: int = Field(2_000, ge=1, description="Environment steps between target network updates.")
    exploration_fraction: float = Field(0.3, gt=0, le=1, description="Share of training over which epsilon decays.")
    exploration_initial_eps: float = Field(1.0, ge=0, le=1, description="Initial epsilon.")
    exploration_final_eps: float = Field(0.05, ge=0, le=1, description="Final epsilon.")
    max_grad_norm: float = Field(10.0, gt=0, description="Gradient clipping.")


class SACHyper(Params):
    """stable_baselines3.SAC arguments (SB3's names)."""

    learning_rate: float = Field(3e-4, gt=0, description="Adam step size.")
    buffer_size: int = Field(100_000, ge=100, description="Replay buffer size (transitions).")
    learning_starts: int = Field(2_000, ge=0, description="Transitions collected before the first update.")
    batch_size: int = Field(256, ge=1, description="Minibatch size.")
    tau: float = Field(0.005, gt=0, le=1, description="Target network update coefficient.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    train_freq: int = Field(4, ge=1, description="Environment steps between two updates.")
    gradient_steps: int = Field(1, ge=1, description="Gradient steps per update.")
    ent_coef: str | float = Field("auto", description="Entropy coefficient, or 'auto' (learned).")


__all__ = ["A2CHyper", "ContinuousEnvParams", "DQNHyper", "DiscreteEnvParams", "EnvParams", "GridEntry", "PPOHyper",
           "SACHyper", "SPOONER_GRID", "TrainParams"]
