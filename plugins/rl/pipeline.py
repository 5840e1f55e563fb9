"""Hook implementations of the RL plugin: the ``rl-algorithm`` kind, its SB3 algorithms, the ``rl`` section and
the ``rl-policy`` execution plugin (docs/rl.md).

Import-light: stable-baselines3, torch and numba are imported when a model is trained or used.
"""

from __future__ import annotations

from cmm_bt import hookimpl
from cmm_bt.sections import Section


@hookimpl
def cmm_bt_register_kinds(register):
    from cmm_bt_plugins.rl.algorithms import RLAlgorithm

    register("rl-algorithm", RLAlgorithm)


@hookimpl
def cmm_bt_register_components(register):
    from cmm_bt_plugins.rl.algorithms import ALGORITHMS

    for cls in ALGORITHMS:
        register(cls)


@hookimpl
def cmm_bt_register_execution(register):
    from cmm_bt_plugins.rl.policy import RLPolicy

    register(RLPolicy)


@hookimpl
def cmm_bt_register_sections(register):
    from cmm_bt_plugins.rl.stages import rl_stages

    register(Section("rl", kind="rl-algorithm", stages=rl_stages,
                     description="Model stage: a reinforcement-learning market maker trained with stable-baselines3 "
                     "(kind `rl-algorithm`: ppo, dqn, a2c, sac) on a gymnasium environment over the engine; "
                     "quote with execution: {name: rl-policy}."))


@hookimpl
def cmm_bt_report_sections(result, console):
    """A short summary of the training behind an RL run."""
    m = result.metrics
    if "rl_train_timesteps" not in m:
        return
    from rich.panel import Panel

    algo = (result.config.get("rl") or {}).get("name", "?")
    curve = result.extra.get("training_curve")
    lines = [f"{algo}: {int(m['rl_train_timesteps']):,} timesteps, {int(m['rl_train_episodes']):,} episodes, "
             f"{m['rl_train_wall_s']:.1f} s ({m['rl_train_steps_per_s']:,.0f} steps/s)",
             f"selected at {int(m['rl_selected_timestep']):,} timesteps: validation PnL {m['rl_validation_pnl']:,.2f}"]
    if curve is not None and len(curve):
        lines.append(f"{len(curve)} validation evaluations; curve: training_curve.parquet / training_curve.png")
    console.print(Panel("\n".join(lines), title="RL training", expand=False))
