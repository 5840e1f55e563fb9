"""The ``rl`` section's pipeline stages.

::

    rl-train (cached) ──> TrainedPolicy ──> rl-signals ──> Signals ──> rl-policy (execution)

1. ``rl-train`` (cacheable): feature statistics of the training split, environments over its sessions,
   SB3 training with periodic evaluation on the validation split (the engine's backtest), the best
   policy kept.  Keyed by the algorithm, its whole config, the seed, the library versions and the
   run's data key (dataset content, splits, engine settings) -- never by the replayed split, so
   ``split: validation`` and ``split: test`` share one trained policy.
2. ``rl-signals``: the standardised feature windows of the replay grid (one signal row per decision
   step: what the compiled policy reads) and the policy's decision latency at batch 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt.energy import ENERGY_TABLE, energy_metrics, energy_row, measure_energy
from cmm_bt.engine.config import EngineConfig
from cmm_bt.errors import ConfigError
from cmm_bt.pipeline import Signals, Stage, StageContext

from cmm_bt_plugins.rl.products import TrainedPolicy

if TYPE_CHECKING:
    from cmm_bt.config.strategy import ComponentSpec
    from cmm_bt.run import RunSpec

    from cmm_bt_plugins.rl.algorithms import RLAlgorithm

#: Decisions timed by rl-signals for the latency metrics.
LATENCY_SAMPLES = 500
#: Options that change how training is shown, not what it produces (left out of the cache key).
DISPLAY_ONLY = ("progress",)


class RLTrainStage(Stage):
    """Train the section's algorithm on the training split, select on validation (see the module doc)."""

    provides = TrainedPolicy
    cacheable = True
    version = 1

    def __init__(self, name: str, algo: "RLAlgorithm"):
        super().__init__(name, algo.name)
        self.algo = algo

    def identity(self, ctx: StageContext) -> Any:
        import gymnasium
        import stable_baselines3
        import torch

        config = self.algo.config.model_dump(mode="json", exclude=set(DISPLAY_ONLY))
        return {"algorithm": self.algo.name, "config": config, "seed": ctx.seed,
                "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                             "gymnasium": gymnasium.__version__}}

    def run(self, ctx: StageContext) -> TrainedPolicy:
        from cmm_bt_plugins.rl.training import fit_normaliser, split_env_data, train, validation_data

        run = ctx.run
        engine = EngineConfig(**run.strategy.engine)
        env = self.algo.config.env
        norm = fit_normaliser(ctx.market, engine, run.splits["train"], env)
        data = split_env_data(ctx.market, engine, run.splits["train"], env, norm)
        if data.starts.size == 0:
            raise ConfigError(f"no training session holds one episode of {data.episode_steps} decision steps; shorten it",
                              file=run.where, key="rl.params.env.episode_length_s")
        if "validation" not in run.splits:
            raise ConfigError("model selection needs a validation split", file=run.where, key="split")
        val = validation_data(ctx.market, engine, run.splits["validation"], env, norm)
        return train(self.algo, data, val, norm, seed=ctx.seed, console=ctx.console, label=f"rl-train {self.algo.name}")

    def save(self, product: TrainedPolicy, folder: Path) -> None:
        product.save(folder)

    def load(self, folder: Path, ctx: StageContext) -> TrainedPolicy:
        return TrainedPolicy.load(folder)


def _percentiles(ns: list[int]) -> tuple[float, float]:
    a = np.asarray(ns, np.float64) / 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


class RLSignalsStage(Stage):
    """The replay grid's feature windows (signal rows) and the policy's per-decision latency at batch 1."""

    provides = Signals
    requires = {"policy": TrainedPolicy}

    def identity(self, ctx: StageContext) -> Any:
        return {"replay": ctx.replay_key}

    def run(self, ctx: StageContext, policy: TrainedPolicy) -> Signals:
        from cmm_bt_plugins.rl.forward import rl_policy_quote
        from cmm_bt_plugins.rl.observations import feature_windows, raw_features

        norm = policy.normaliser
        grid = np.asarray(ctx.grid, dtype=np.int64)
        if grid.size == 0:
            return Signals(pd.DataFrame(columns=policy.feature_columns, dtype=np.float32))
        fs = raw_features(ctx.market, grid, None, norm.window, norm.levels)
        feats = feature_windows(fs, norm)
        frame = pd.DataFrame(feats, columns=policy.feature_columns)
        # per-decision latency at batch 1 on replay observations: SB3's torch policy and the compiled form
        rows = np.linspace(0, len(feats) - 1, min(LATENCY_SAMPLES, len(feats))).astype(np.int64)
        d = feats.shape[1]
        params = policy.params()
        obs = np.zeros((rows.size, d + 2), np.float32)
        obs[:, :d] = feats[rows]
        obs[:, d + 1] = 1.0
        sig = feats.astype(np.float64)
        sig.flags.writeable = False
        model = policy.sb3_model()
        perf = time.perf_counter_ns
        torch_ns, numba_ns = [], []
        for i, r in enumerate(rows):
            x = obs[i:i + 1]
            c0 = perf()
            model.predict(x, deterministic=True)
            torch_ns.append(perf() - c0)
            c0 = perf()
            rl_policy_quote(0, 100, 101, 1.0, 1.0, 0.0, 0.0, sig[r], params)
            numba_ns.append(perf() - c0)
        t50, t99 = _percentiles(torch_ns[1:] or torch_ns)
        n50, n99 = _percentiles(numba_ns[1:] or numba_ns)
        metrics = {"decision_latency_us_p50": t50, "decision_latency_us_p99": t99,
                   "rl_compiled_decision_us_p50": n50, "rl_compiled_decision_us_p99": n99}
        # energy per decision of the same SB3 predict (the policy's torch path)
        energy = measure_energy(lambda i: model.predict(obs[i % len(obs):i % len(obs) + 1], deterministic=True), min_decisions=len(obs))
        tables = {}
        if energy is not None:
            metrics.update(energy_metrics(energy))
            metrics.update(energy_metrics(energy, "rl_"))
            tables[ENERGY_TABLE] = pd.DataFrame([energy_row("rl-policy", energy, f"SB3 {self.component} predict, batch 1")])
        return Signals(frame, metrics, tables)


def rl_stages(run: "RunSpec", spec: "ComponentSpec") -> list[Stage]:
    """The stages an ``rl:`` section adds to a run (see the module doc)."""
    algo = run.registry.create("rl-algorithm", spec.name, spec.params, where=run.where, key="rl")
    if algo.config.env.actions == "discrete" and "flatten" in algo.config.env.grid and EngineConfig(**run.strategy.engine).post_only:
        raise ConfigError("the 'flatten' action sends a marketable order, which engine.post_only: true rejects; set "
                          "engine.post_only: false or drop 'flatten' from the grid", file=run.where, key="rl.params.env.grid")
    return [RLTrainStage("rl-train", algo), RLSignalsStage("rl-signals", algo.name)]


__all__ = ["RLSignalsStage", "RLTrainStage", "rl_stages"]
