"""The ``teacher`` section's pipeline stages, for any :class:`~cmm_bt_plugins.models.interfaces.Teacher`.

::

    training-windows ─┐                      ┌─> teacher-heads ──┐
    teacher ──────────┼─> teacher-features ──┤                   ├─> teacher-signals (fallback)
    replay-windows ───┴─> teacher-replay-features ─> teacher-latency ┘

1. ``training-windows`` / ``replay-windows``: the :class:`~cmm_bt_plugins.features.market.FeatureSet`
   of the train and validation splits and of the replay grid (on the engine's decision grid);
2. ``teacher-features`` (cached): hidden states of every ``stride``-th train / validation step with
   valid targets, at most ``max_samples`` per split; ``teacher-replay-features`` (cached): the
   replay split on *every* step while it has at most ``replay_max_samples`` steps, else on every
   k-th step (``k = ceil(N / replay_max_samples)``);
3. ``teacher-heads``: heads fitted on train (alpha / layer chosen on validation), predictions of
   every split, and their quality next to the naive forecast;
4. ``teacher-latency``: the teacher's per-decision latency at batch 1 on ``latency_samples`` windows;
5. ``teacher-signals`` (the LLM market maker, a *fallback*: a strategy whose students provide the
   signals drops it): each replay prediction held (forward-filled, so still past-only) until the
   next teacher step, as ``pred_mid``, ``pred_spread``, ``pred_volume``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt.energy import ENERGY_TABLE, energy_metrics, energy_row, measure_energy
from cmm_bt.errors import ConfigError
from cmm_bt.pipeline import Signals, Stage, StageContext

from cmm_bt_plugins.llm.feature_cache import load_features, save_features
from cmm_bt_plugins.models.products import (
    ReplayTeacherFeatures,
    ReplayWindows,
    TeacherFeatures,
    TeacherLatency,
    TeacherModel,
    TeacherPredictions,
    TrainingWindows,
    teacher_sample_counts,
)
from cmm_bt_plugins.models.signals import SIGNAL_COLUMNS, TASKS

if TYPE_CHECKING:
    from cmm_bt.config.strategy import ComponentSpec
    from cmm_bt.run import RunSpec

    from cmm_bt_plugins.features.market import FeatureSet
    from cmm_bt_plugins.models.interfaces import Teacher


# ------------------------------------------------------------------------------------ helpers
def split_feature_set(ctx: StageContext, split: str, spec) -> "FeatureSet | None":
    """The FeatureSet of ``split`` on the engine's decision grid (None when the grid is empty)."""
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid

    from cmm_bt_plugins.features.market import build_feature_set

    if split not in ctx.run.splits:
        return None
    times, eps = decision_grid(ctx.market, EngineConfig(**ctx.run.strategy.engine), *ctx.run.splits[split])
    if len(times) == 0:
        return None
    return build_feature_set(ctx.market, times, spec, eps)


def select_indices(fs: "FeatureSet", stride: int, max_samples: int | None, require_targets: bool) -> np.ndarray:
    """Rows of ``fs`` that get teacher features: every ``stride``-th row with a valid book (and
    valid targets when ``require_targets``), thinned evenly to at most ``max_samples``."""
    ok = fs.book_valid & (fs.target_valid if require_targets else True)
    cand = np.arange(0, len(fs), max(1, int(stride)), dtype=np.int64)
    cand = cand[ok[cand]]
    if max_samples is not None and cand.size > max_samples:
        pick = np.unique(np.round(np.linspace(0, cand.size - 1, max_samples)).astype(np.int64))
        cand = cand[pick]
    return cand


def replay_indices(fs: "FeatureSet", max_samples: int | None) -> tuple[np.ndarray, int]:
    """Replay rows with teacher features and the thinning factor k (see the module doc)."""
    n = len(fs)
    k = 1 if max_samples is None or n <= max_samples else math.ceil(n / max_samples)
    idx = np.arange(0, n, k, dtype=np.int64)
    return idx[fs.book_valid[idx]], k


def hold_predictions(n: int, rows: np.ndarray, pred: pd.DataFrame) -> pd.DataFrame:
    """Spread per-sample predictions over ``n`` grid rows, each held until the next sample row."""
    out = pd.DataFrame(np.nan, index=np.arange(n), columns=list(SIGNAL_COLUMNS.values()))
    for task, col in SIGNAL_COLUMNS.items():
        out.loc[rows, col] = pred[task].to_numpy()
    return out.ffill()


class TeacherStage(Stage):
    """A stage built around the run's teacher component."""

    def __init__(self, name: str, teacher: "Teacher"):
        super().__init__(name, teacher.name)
        self.teacher = teacher
        self.config = teacher.config


# ------------------------------------------------------------------------------------- stages
class TrainingWindowsStage(TeacherStage):
    provides = TrainingWindows

    def identity(self, ctx: StageContext) -> Any:
        return {"inputs": self.config.inputs.model_dump()}

    def run(self, ctx: StageContext) -> TrainingWindows:
        train = split_feature_set(ctx, "train", self.config.inputs)
        if train is None:
            raise ConfigError("the teacher needs a non-empty train split to fit its heads", file=ctx.run.where, key="split")
        return TrainingWindows(train, split_feature_set(ctx, "validation", self.config.inputs))


class ReplayWindowsStage(TeacherStage):
    provides = ReplayWindows

    def identity(self, ctx: StageContext) -> Any:
        return {"inputs": self.config.inputs.model_dump(), "replay": ctx.replay_key}

    def run(self, ctx: StageContext) -> ReplayWindows:
        from cmm_bt.engine.config import EngineConfig
        from cmm_bt.engine.loop import decision_grid

        from cmm_bt_plugins.features.market import build_feature_set

        grid = np.asarray(ctx.grid, dtype=np.int64)
        times, eps = decision_grid(ctx.market, EngineConfig(**ctx.run.strategy.engine), *ctx.run.splits[ctx.run.replay_split])
        fs = build_feature_set(ctx.market, grid, self.config.inputs, eps if np.array_equal(times, grid) else None)
        return ReplayWindows(fs, ctx.run.replay_split)


class TeacherModelStage(TeacherStage):
    provides = TeacherModel

    def identity(self, ctx: StageContext) -> Any:
        return self.teacher.identity()

    def run(self, ctx: StageContext) -> TeacherModel:
        return TeacherModel(self.teacher)


class TeacherFeaturesStage(TeacherStage):
    """Hidden states of the selected train / validation rows (cached; resumable)."""

    provides = TeacherFeatures
    requires = {"windows": TrainingWindows, "model": TeacherModel}
    cacheable = True

    def identity(self, ctx: StageContext) -> Any:
        return {"stride": self.config.stride, "max_samples": self.config.max_samples}

    def run(self, ctx: StageContext, windows: TrainingWindows, model: TeacherModel) -> TeacherFeatures:
        out = {}
        for split in ("train", "validation"):
            fs = getattr(windows, split)
            idx = select_indices(fs, self.config.stride, self.config.max_samples, require_targets=True) if fs is not None else np.zeros(0, np.int64)
            out[split] = model.teacher.extract(fs, ctx.work_dir / split, idx, label=f"teacher {split}", console=ctx.console) if idx.size else None
        if out["train"] is None:
            raise ConfigError("no training step has a valid book and targets for the teacher", file=ctx.run.where, key="split")
        return TeacherFeatures(out["train"], out["validation"])

    def save(self, product: TeacherFeatures, folder: Path) -> None:
        for split in ("train", "validation"):
            if getattr(product, split) is not None:
                save_features(getattr(product, split), folder / split)

    def load(self, folder: Path, ctx: StageContext) -> TeacherFeatures:
        return TeacherFeatures(load_features(folder / "train"), load_features(folder / "validation") if (folder / "validation").is_dir() else None)


class ReplayTeacherFeaturesStage(TeacherStage):
    """Hidden states on the replay grid (cached; resumable)."""

    provides = ReplayTeacherFeatures
    requires = {"windows": ReplayWindows, "model": TeacherModel}
    cacheable = True

    def identity(self, ctx: StageContext) -> Any:
        return {"replay_max_samples": self.config.replay_max_samples}

    def run(self, ctx: StageContext, windows: ReplayWindows, model: TeacherModel) -> ReplayTeacherFeatures:
        idx, k = replay_indices(windows.replay, self.config.replay_max_samples)
        lf = model.teacher.extract(windows.replay, ctx.work_dir / "replay", idx, label=f"teacher {windows.split}", console=ctx.console)
        return ReplayTeacherFeatures(lf, k)

    def save(self, product: ReplayTeacherFeatures, folder: Path) -> None:
        save_features(product.replay, folder / "replay")
        (folder / "stride.txt").write_text(str(product.stride))

    def load(self, folder: Path, ctx: StageContext) -> ReplayTeacherFeatures:
        return ReplayTeacherFeatures(load_features(folder / "replay"), int((folder / "stride.txt").read_text()))


class TeacherHeadsStage(TeacherStage):
    """Heads fitted on the training features (alpha / layer chosen on validation), predictions of every split."""

    provides = TeacherPredictions
    requires = {"windows": TrainingWindows, "replay": ReplayWindows, "features": TeacherFeatures, "replay_features": ReplayTeacherFeatures}

    def identity(self, ctx: StageContext) -> Any:
        return self.config.heads.model_dump()

    def run(self, ctx: StageContext, windows: TrainingWindows, replay: ReplayWindows, features: TeacherFeatures,
            replay_features: ReplayTeacherFeatures) -> TeacherPredictions:
        from cmm_bt_plugins.features.quality import quality_table
        from cmm_bt_plugins.llm.heads import TeacherHeads

        fsets = {"train": windows.train, "validation": windows.validation, "replay": replay.replay}
        feats = {"train": features.train, "validation": features.validation, "replay": replay_features.replay}
        feats = {s: f for s, f in feats.items() if f is not None}
        y = {s: fsets[s].y()[f.indices] for s, f in feats.items()}
        heads = TeacherHeads(self.config.heads).fit(feats["train"], y["train"], feats.get("validation"), y.get("validation"))
        preds = {s: heads.predict(f) for s, f in feats.items()}
        tables = []
        for split in ("validation", "replay"):
            if split not in feats:
                continue
            fs, rows = fsets[split], feats[split].indices
            naive = fs.naive().iloc[rows].reset_index(drop=True)
            t = quality_table(fs.targets.iloc[rows].reset_index(drop=True), {"teacher": preds[split], "naive": naive}, fs.target_valid[rows])
            t.insert(0, "split", replay.split if split == "replay" else split)
            tables.append(t)
        return TeacherPredictions(heads, preds, pd.concat(tables, ignore_index=True))


class TeacherLatencyStage(TeacherStage):
    """The teacher's decision latency at batch 1 (measured every run, never cached)."""

    provides = TeacherLatency
    requires = {"windows": TrainingWindows, "replay": ReplayWindows, "features": TeacherFeatures,
                "replay_features": ReplayTeacherFeatures, "model": TeacherModel}

    def identity(self, ctx: StageContext) -> Any:
        return {"latency_samples": self.config.latency_samples}

    def run(self, ctx: StageContext, windows: TrainingWindows, replay: ReplayWindows, features: TeacherFeatures,
            replay_features: ReplayTeacherFeatures, model: TeacherModel) -> TeacherLatency:
        n = self.config.latency_samples
        rows = replay_features.replay.indices
        fs, rows = (replay.replay, rows[:n]) if rows.size else (windows.train, features.train.indices[:n])
        lat = model.teacher.decision_latency_us(fs.X[rows], fs)
        X = fs.X[rows]
        energy = measure_energy(lambda i: model.teacher.hidden_states(X[i % len(X):i % len(X) + 1], fs), min_decisions=len(X))
        return TeacherLatency(lat["p50"], lat["p99"], lat["mean"], list(lat["samples"]), energy)


class TeacherSignalsStage(TeacherStage):
    """The LLM market maker's signals: each replay prediction held until the next teacher step."""

    provides = Signals
    requires = {"windows": TrainingWindows, "replay": ReplayWindows, "features": TeacherFeatures, "replay_features": ReplayTeacherFeatures,
                "predictions": TeacherPredictions, "latency": TeacherLatency, "model": TeacherModel}
    fallback = True

    def identity(self, ctx: StageContext) -> Any:
        return None

    def run(self, ctx: StageContext, windows: TrainingWindows, replay: ReplayWindows, features: TeacherFeatures,
            replay_features: ReplayTeacherFeatures, predictions: TeacherPredictions, latency: TeacherLatency,
            model: TeacherModel) -> Signals:
        frame = hold_predictions(len(ctx.grid), replay_features.replay.indices, predictions.predictions["replay"])
        q = predictions.quality
        out: dict[str, float] = {}
        for row in q[q["split"] == replay.split].itertuples(index=False):
            prefix = "pred" if row.model == "teacher" else "naive"
            for m in ("mae", "rmse", "r2"):
                out[f"{prefix}_{m}_{row.task}"] = float(getattr(row, m))
            if row.task == "mid":
                out[f"{prefix}_diracc_mid"] = float(row.diracc)
        teacher = model.teacher
        out["model_params"] = float(teacher.n_params() + predictions.heads.n_params())
        out["teacher_decision_latency_us_p50"] = latency.p50
        out["teacher_decision_latency_us_p99"] = latency.p99
        # The LLM market maker decides with one teacher forward per step: that is its decision latency.
        out["decision_latency_us_p50"] = latency.p50
        out["decision_latency_us_p99"] = latency.p99
        counts = teacher_sample_counts(features, replay_features)
        out["teacher_samples"] = float(sum(counts.values()))
        out.update(counts)
        out["teacher_replay_stride"] = float(replay_features.stride)
        tables = {"prediction_quality": q}
        if latency.energy is not None:
            out.update(energy_metrics(latency.energy))
            out.update(energy_metrics(latency.energy, "teacher_"))
            tables[ENERGY_TABLE] = pd.DataFrame([energy_row("teacher", latency.energy, "one teacher forward per decision, batch 1")])
        return Signals(frame, out, tables)


# -------------------------------------------------------------------------------- the section
def teacher_stages(run: "RunSpec", spec: "ComponentSpec") -> list[Stage]:
    """The stages a ``teacher:`` section adds to a run (see the module doc)."""
    teacher = run.registry.create("teacher", spec.name, spec.params, where=run.where, key="teacher")
    return [
        TrainingWindowsStage("training-windows", teacher),
        ReplayWindowsStage("replay-windows", teacher),
        TeacherModelStage("teacher", teacher),
        TeacherFeaturesStage("teacher-features", teacher),
        ReplayTeacherFeaturesStage("teacher-replay-features", teacher),
        TeacherHeadsStage("teacher-heads", teacher),
        TeacherLatencyStage("teacher-latency", teacher),
        TeacherSignalsStage("teacher-signals", teacher),
    ]


__all__ = ["hold_predictions", "replay_indices", "select_indices", "split_feature_set", "teacher_stages", "TASKS"]
