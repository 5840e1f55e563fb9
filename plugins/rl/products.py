"""The ``rl-train`` stage's product: :class:`TrainedPolicy` (saved in the stage cache, read by ``rl-policy``).

It also contributes to the run folder through the host's generic product protocol
(:class:`cmm_bt.pipeline.RunOutputs`): the training curve as ``training_curve.parquet`` and
``training_curve.png``, and the ``rl_*`` metrics.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cmm_bt_plugins.rl.actions import ActionMap
from cmm_bt_plugins.rl.forward import Network, pack
from cmm_bt_plugins.rl.observations import Normaliser, feature_columns

CURVE_COLUMNS = ["timesteps", "episodes", "train_reward_mean", "validation_reward", "validation_pnl",
                 "validation_fills", "validation_max_abs_position", "elapsed_s", "selected"]


@dataclass
class TrainedPolicy:
    """A policy trained by ``rl-train``.

    :ivar algorithm: the ``rl`` component (``ppo``, ``dqn`` ...) that trained it.
    :ivar model_zip: the SB3 model in SB3's zip format (``<Algorithm>.load`` reads it).
    :ivar network: the actor's weights as numpy arrays (the compiled forward's source).
    :ivar normaliser: the training split's feature statistics (observation standardisation).
    :ivar actions: how actions become quotes.
    :ivar curve: one row per validation evaluation (:data:`CURVE_COLUMNS`).
    :ivar info: training facts (timesteps, selected timestep, validation PnL, wall time, ...).
    """

    algorithm: str
    model_zip: bytes
    network: Network
    normaliser: Normaliser
    actions: ActionMap
    curve: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    _model: Any = field(default=None, repr=False, compare=False)

    # -------------------------------------------------------------------------------- using it
    @property
    def feature_columns(self) -> list[str]:
        return feature_columns(self.normaliser.window, self.normaliser.levels)

    @property
    def n_features(self) -> int:
        return len(self.feature_columns)

    def params(self) -> np.ndarray:
        """The compiled policy's params (:func:`cmm_bt_plugins.rl.forward.pack`)."""
        return pack(self.network, self.actions, self.n_features)

    def sb3_model(self):
        """The SB3 model loaded from :attr:`model_zip` (CPU; cached)."""
        if self._model is None:
            from cmm_bt_plugins.rl.algorithms import sb3_class

            self._model = sb3_class(self.info["sb3_class"]).load(io.BytesIO(self.model_zip), device="cpu")
        return self._model

    def torch_actions(self, obs: np.ndarray) -> np.ndarray:
        """SB3 ``predict(obs, deterministic=True)`` for a batch ``obs [n, d]``."""
        action, _ = self.sb3_model().predict(np.asarray(obs, np.float32), deterministic=True)
        return action

    # ------------------------------------------------------------------------ run folder outputs
    def run_metrics(self) -> dict[str, float]:
        i = self.info
        return {
            "rl_train_timesteps": float(i["timesteps"]),
            "rl_selected_timestep": float(i["selected_timestep"]),
            "rl_validation_pnl": float(i["selected_validation_pnl"]),
            "rl_validation_reward": float(i["selected_validation_reward"]),
            "rl_train_episodes": float(i["episodes"]),
            "rl_train_wall_s": float(i["wall_s"]),
            "rl_train_steps_per_s": float(i["timesteps"]) / max(float(i["wall_s"]), 1e-9),
            "model_params": float(self.network.n_params()),
        }

    def run_tables(self) -> dict[str, pd.DataFrame]:
        return {"training_curve": self.curve}

    def run_files(self) -> dict[str, bytes]:
        from cmm_bt_plugins.rl.curve import curve_png

        return {"training_curve.png": curve_png(self.curve, f"{self.algorithm} training ({self.info.get('reward', '')} reward)")}

    # ------------------------------------------------------------------------------ stage cache
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        (folder / "model.zip").write_bytes(self.model_zip)
        np.savez(folder / "network.npz", **self.network.to_npz())
        np.savez(folder / "normaliser.npz", **self.normaliser.to_npz())
        (folder / "actions.json").write_text(json.dumps(self.actions.to_json(), indent=1))
        self.curve.to_parquet(folder / "curve.parquet", index=False)
        (folder / "info.json").write_text(json.dumps({"algorithm": self.algorithm, **self.info}, indent=1, sort_keys=True, default=str))

    @classmethod
    def load(cls, folder: Path) -> "TrainedPolicy":
        folder = Path(folder)
        info = json.loads((folder / "info.json").read_text())
        with np.load(folder / "network.npz") as z:
            net = Network.from_npz(z)
        with np.load(folder / "normaliser.npz") as z:
            norm = Normaliser.from_npz(z)
        return cls(info.pop("algorithm"), (folder / "model.zip").read_bytes(), net, norm,
                   ActionMap.from_json(json.loads((folder / "actions.json").read_text())),
                   pd.read_parquet(folder / "curve.parquet"), info)


__all__ = ["CURVE_COLUMNS", "TrainedPolicy"]
