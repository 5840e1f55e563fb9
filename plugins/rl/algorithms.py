"""The ``rl-algorithm`` component kind: one component per stable-baselines3 algorithm.

A component's ``Config`` is the whole ``rl.params`` mapping: the shared training options
(:class:`~cmm_bt_plugins.rl.config.TrainParams`, ``env`` included) plus ``hyper``, the algorithm's
own hyper-parameters (SB3's argument names, validated).  The component builds the SB3 model and says
which torch modules make up its deterministic actor (for the compiled forward).  stable-baselines3 and
torch are imported only when a model is built.

Adding an algorithm: subclass :class:`RLAlgorithm`, set ``name``, ``sb3_name``, ``default_activation``,
a ``Config`` with ``hyper`` (and ``env: DiscreteEnvParams`` / ``ContinuousEnvParams`` if it supports
only one action kind), implement :meth:`RLAlgorithm.actor`, and register it in
:mod:`cmm_bt_plugins.rl.pipeline` (docs/rl.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from cmm_bt.components import Component

from cmm_bt_plugins.rl.config import (
    A2CHyper,
    ContinuousEnvParams,
    DiscreteEnvParams,
    DQNHyper,
    EnvParams,
    PPOHyper,
    SACHyper,
    TrainParams,
)


def sb3_class(name: str):
    """The stable-baselines3 algorithm class ``name`` (``"PPO"``, ``"DQN"`` ...)."""
    import stable_baselines3

    return getattr(stable_baselines3, name)


class RLAlgorithm(Component):
    """Base of the ``rl-algorithm`` kind."""

    kind: ClassVar[str] = "rl-algorithm"
    sb3_name: ClassVar[str] = ""
    default_activation: ClassVar[str] = "tanh"

    class Config(TrainParams):
        hyper: Any = None

    def activation(self) -> str:
        return self.config.activation or self.default_activation

    def policy_kwargs(self) -> dict:
        import torch.nn as nn

        return {"net_arch": list(self.config.net_arch), "activation_fn": nn.Tanh if self.activation() == "tanh" else nn.ReLU}

    def build(self, env, seed: int):
        """The SB3 model on the vectorised environment ``env`` (CPU, seeded)."""
        return sb3_class(self.sb3_name)("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                                         policy_kwargs=self.policy_kwargs(), **self.config.hyper.model_dump())

    def actor(self, model) -> tuple[list, str]:
        """The deterministic actor of ``model``: torch modules in order and the head (``argmax``, ``clip``, ``tanh``)."""
        raise NotImplementedError


class _ActorCritic(RLAlgorithm):
    def actor(self, model) -> tuple[list, str]:
        p = model.policy
        head = "argmax" if self.config.env.actions == "discrete" else "clip"
        return [*p.mlp_extractor.policy_net, p.action_net], head


class PPO(_ActorCritic):
    """Proximal policy optimisation (discrete or continuous actions)."""

    name: ClassVar[str] = "ppo"
    sb3_name: ClassVar[str] = "PPO"

    class Config(TrainParams):
        hyper: PPOHyper = Field(default_factory=PPOHyper, description="stable_baselines3.PPO hyper-parameters.")


class A2C(_ActorCritic):
    """Advantage actor-critic (discrete or continuous actions)."""

    name: ClassVar[str] = "a2c"
    sb3_name: ClassVar[str] = "A2C"

    class Config(TrainParams):
        hyper: A2CHyper = Field(default_factory=A2CHyper, description="stable_baselines3.A2C hyper-parameters.")


class DQN(RLAlgorithm):
    """Deep Q-network (discrete actions only)."""

    name: ClassVar[str] = "dqn"
    sb3_name: ClassVar[str] = "DQN"
    default_activation: ClassVar[str] = "relu"

    class Config(TrainParams):
        env: DiscreteEnvParams = Field(default_factory=DiscreteEnvParams, description=TrainParams.model_fields["env"].description)
        hyper: DQNHyper = Field(default_factory=DQNHyper, description="stable_baselines3.DQN hyper-parameters.")

    def actor(self, model) -> tuple[list, str]:
        return list(model.policy.q_net.q_net), "argmax"


class SAC(RLAlgorithm):
    """Soft actor-critic (continuous actions only)."""

    name: ClassVar[str] = "sac"
    sb3_name: ClassVar[str] = "SAC"
    default_activation: ClassVar[str] = "relu"

    class Config(TrainParams):
        env: ContinuousEnvParams = Field(default_factory=ContinuousEnvParams, description=TrainParams.model_fields["env"].description)
        hyper: SACHyper = Field(default_factory=SACHyper, description="stable_baselines3.SAC hyper-parameters.")

    def actor(self, model) -> tuple[list, str]:
        a = model.policy.actor
        return [*a.latent_pi, a.mu], "tanh"


ALGORITHMS: tuple[type[RLAlgorithm], ...] = (PPO, DQN, A2C, SAC)

__all__ = ["ALGORITHMS", "A2C", "DQN", "EnvParams", "PPO", "RLAlgorithm", "SAC", "sb3_class"]
