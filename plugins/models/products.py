"""Products the model stages hand each other (by type, through :class:`cmm_bt.pipeline.Pipeline`).

The CMM stages add two more, defined next to the code that makes them:
:class:`~cmm_bt_plugins.cmm.probe.ProbeResult` and :class:`~cmm_bt_plugins.cmm.ofdd.StudentSet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from cmm_bt_plugins.features.market import FeatureSet
    from cmm_bt_plugins.llm.feature_cache import LayerFeatures
    from cmm_bt_plugins.llm.heads import TeacherHeads
    from cmm_bt_plugins.models.interfaces import MoE, Teacher


@dataclass
class TrainingWindows:
    """Model inputs and targets on the decision grids of the train and validation splits."""

    train: "FeatureSet"
    validation: "FeatureSet | None"


@dataclass
class ReplayWindows:
    """Model inputs and targets on the replay split's decision grid (one row per decision step)."""

    replay: "FeatureSet"
    split: str


@dataclass
class TeacherModel:
    """The run's teacher component (loaded lazily by its own methods)."""

    teacher: "Teacher"


@dataclass
class TeacherFeatures:
    """Teacher hidden states of the selected train / validation rows."""

    train: "LayerFeatures"
    validation: "LayerFeatures | None"


@dataclass
class ReplayTeacherFeatures:
    """Teacher hidden states on the replay grid: every ``stride``-th step with a valid book."""

    replay: "LayerFeatures"
    stride: int


def teacher_sample_counts(features: TeacherFeatures, replay_features: ReplayTeacherFeatures) -> dict[str, float]:
    """``teacher_samples_{train,validation,replay}``: teacher feature rows per split (metrics keys)."""
    parts = {"train": features.train, "validation": features.validation, "replay": replay_features.replay}
    return {f"teacher_samples_{k}": float(0 if f is None else len(f)) for k, f in parts.items()}


@dataclass
class TeacherPredictions:
    """The fitted teacher heads and their predictions per split.

    :ivar predictions: ``"train" / "validation" / "replay"`` -> one row per teacher sample (the
        rows of the matching features' ``indices``), one column per task.
    :ivar quality: prediction quality of the heads and the naive forecast on validation and replay
        (columns split, model, task, n, mae, rmse, r2, diracc).
    """

    heads: "TeacherHeads"
    predictions: dict[str, pd.DataFrame]
    quality: pd.DataFrame


@dataclass
class TeacherLatency:
    """The teacher's decision latency at batch 1, µs (``samples``: every timed decision), and its
    energy per decision (:class:`cmm_bt.energy.EnergyEstimate`, None when turned off)."""

    p50: float
    p99: float
    mean: float
    samples: list[float] = field(default_factory=list)
    energy: Any = None


@dataclass
class FittedMixture:
    """The mixture of experts, fitted on the validation split."""

    moe: "MoE"
    info: dict[str, Any] = field(default_factory=dict)
