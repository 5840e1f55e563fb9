"""Hook implementations of the LLM teacher: registration, signals of the "LLM market maker", metrics.

For a strategy with a ``teacher`` and no ``students`` (a CMM plugin handles those),
:func:`cmm_bt_compute_signals`:

1. builds the :class:`~cmm_bt_plugins.features.market.FeatureSet` of the train and validation
   splits (on the engine's decision grid, ``cmm_bt.engine.loop.decision_grid``) and of the replay
   grid;
2. extracts teacher features (cached under ``run.cache_dir / "teacher"``): train / validation on
   every ``stride``-th step with valid targets, at most ``max_samples`` each; the replay split on
   *every* step while it has at most ``replay_max_samples`` steps, else on every k-th step
   (``k = ceil(N / replay_max_samples)``), each prediction being held (forward-filled, so still
   past-only) until the next teacher step;
3. fits the teacher heads on train (alpha / layer chosen on validation) and predicts the replay
   grid: signals ``pred_mid``, ``pred_spread``, ``pred_volume`` (NaN before the first replay step
   with a two-sided book);
4. measures the teacher's per-decision latency at batch 1 on ``latency_samples`` replay prompts.

Everything is stashed on ``run.extra["llm_teacher"]`` (a :class:`TeacherRun`) for later plugins,
and the prediction-quality table on ``run.extra["tables"]["prediction_quality"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt import hookimpl

if TYPE_CHECKING:
    from cmm_bt.data.schema import MarketData
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec

    from cmm_bt_plugins.features.market import FeatureSet
    from cmm_bt_plugins.llm.feature_cache import LayerFeatures
    from cmm_bt_plugins.llm.heads import TeacherHeads
    from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

#: Key of :class:`TeacherRun` on ``run.extra``.
EXTRA_KEY = "llm_teacher"
SIGNAL_COLUMNS = {"mid": "pred_mid", "spread": "pred_spread", "volume": "pred_volume"}


@dataclass
class TeacherRun:
    """Intermediate products of the teacher stage (``run.extra["llm_teacher"]``).

    :ivar teacher: the loaded teacher component (model in memory).
    :ivar feature_sets: ``{"train", "validation", "replay"}`` -> FeatureSet.
    :ivar features: same keys -> LayerFeatures (teacher features of the selected rows).
    :ivar heads: the fitted TeacherHeads.
    :ivar predictions: same keys -> DataFrame of head predictions, one row per selected sample
        (``features[k].indices`` gives the FeatureSet rows).
    :ivar signals: the replay signals (one row per replay grid time).
    :ivar latency_us: ``{"p50", "p99", "mean", "samples"}`` decision latency at batch 1, µs.
    :ivar quality: prediction-quality table (split, model, task, n, mae, rmse, r2, diracc).
    :ivar replay_stride: k of the replay thinning (1 = dense).
    """

    teacher: "HFCausalLMTeacher"
    feature_sets: dict[str, "FeatureSet"]
    features: dict[str, "LayerFeatures"]
    heads: "TeacherHeads"
    predictions: dict[str, pd.DataFrame]
    signals: pd.DataFrame
    latency_us: dict[str, Any]
    quality: pd.DataFrame
    replay_stride: int = 1
    info: dict[str, Any] = field(default_factory=dict)


@hookimpl
def cmm_bt_register_teachers(register):
    from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

    register(HFCausalLMTeacher, aliases=("hf",))


def split_feature_set(run: "RunSpec", market: "MarketData", split: str, spec, engine) -> "FeatureSet | None":
    """The FeatureSet of ``split`` on the engine's decision grid (None when the grid is empty)."""
    from cmm_bt.engine.loop import decision_grid

    from cmm_bt_plugins.features.market import build_feature_set

    if split not in run.splits:
        return None
    start, end = run.splits[split]
    times, eps = decision_grid(market, engine, start, end)
    if len(times) == 0:
        return None
    return build_feature_set(market, times, spec, eps)


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


@hookimpl
def cmm_bt_compute_signals(run: "RunSpec", market: "MarketData", grid: np.ndarray):
    st = run.strategy
    if st.teacher is None or st.students is not None:
        return None
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid

    from cmm_bt_plugins.features.market import build_feature_set
    from cmm_bt_plugins.features.quality import quality_table
    from cmm_bt_plugins.llm.heads import TeacherHeads
    from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher, select_indices

    where = str(run.strategy_file) if run.strategy_file else None
    teacher = run.registry.create("teacher", st.teacher.name, st.teacher.params, where=where, key="teacher")
    if not isinstance(teacher, HFCausalLMTeacher):
        return None  # another plugin's teacher: its own pipeline handles it
    cfg = teacher.config
    engine = EngineConfig(**st.engine)
    spec = cfg.inputs
    cache = run.cache_dir / "teacher"
    console = run.console

    fsets: dict[str, FeatureSet] = {}
    for split in ("train", "validation"):
        fs = split_feature_set(run, market, split, spec, engine)
        if fs is not None:
            fsets[split] = fs
    if "train" not in fsets:
        from cmm_bt.errors import ConfigError

        raise ConfigError("the teacher needs a non-empty train split to fit its heads", file=where, key="split")
    grid = np.asarray(grid, dtype=np.int64)
    r_times, r_eps = decision_grid(market, engine, *run.splits[run.replay_split])
    eps = r_eps if np.array_equal(r_times, grid) else None
    fsets["replay"] = build_feature_set(market, grid, spec, eps)

    feats: dict[str, LayerFeatures] = {}
    for split in ("train", "validation"):
        if split in fsets:
            idx = select_indices(fsets[split], cfg.stride, cfg.max_samples, require_targets=True)
            if idx.size:
                feats[split] = teacher.extract(fsets[split], cache, idx, label=f"teacher {split}", console=console)
    r_idx, k = replay_indices(fsets["replay"], cfg.replay_max_samples)
    feats["replay"] = teacher.extract(fsets["replay"], cache, r_idx, label=f"teacher {run.replay_split}", console=console)

    def y_of(split: str) -> np.ndarray:
        return fsets[split].y()[feats[split].indices]

    heads = TeacherHeads(cfg.heads).fit(feats["train"], y_of("train"), feats.get("validation"), y_of("validation") if "validation" in feats else None)
    preds = {s: heads.predict(f) for s, f in feats.items()}
    signals = hold_predictions(len(grid), feats["replay"].indices, preds["replay"])

    prompts = teacher.prompts(fsets["replay"], r_idx[: cfg.latency_samples]) if r_idx.size else teacher.prompts(fsets["train"], feats["train"].indices[: cfg.latency_samples])
    latency = teacher.decision_latency_us(prompts)

    tables = []
    for split in ("validation", "replay"):
        if split not in feats:
            continue
        fs, rows = fsets[split], feats[split].indices
        naive = fs.naive().iloc[rows].reset_index(drop=True)
        t = quality_table(fs.targets.iloc[rows].reset_index(drop=True), {"teacher": preds[split], "naive": naive}, fs.target_valid[rows])
        t.insert(0, "split", run.replay_split if split == "replay" else split)
        tables.append(t)
    quality = pd.concat(tables, ignore_index=True)
    run.extra[EXTRA_KEY] = TeacherRun(
        teacher=teacher, feature_sets=fsets, features=feats, heads=heads, predictions=preds, signals=signals,
        latency_us=latency, quality=quality, replay_stride=k,
        info={"load_seconds": teacher.load_seconds, "loaded_from": teacher.loaded_from, "heads": heads.summary()},
    )
    run.extra.setdefault("tables", {})["prediction_quality"] = quality
    return signals


@hookimpl
def cmm_bt_extra_metrics(run: "RunSpec", result: "RunResult"):
    tr: TeacherRun | None = run.extra.get(EXTRA_KEY)
    if tr is None:
        return None
    q = tr.quality
    q = q[q["split"] == run.replay_split]
    out: dict[str, float] = {}
    for _, row in q.iterrows():
        prefix = "pred" if row["model"] == "teacher" else "naive"
        out[f"{prefix}_mae_{row['task']}"] = float(row["mae"])
        out[f"{prefix}_rmse_{row['task']}"] = float(row["rmse"])
        out[f"{prefix}_r2_{row['task']}"] = float(row["r2"])
        if row["task"] == "mid":
            out[f"{prefix}_diracc_mid"] = float(row["diracc"])
    out["model_params"] = float(tr.teacher.n_params() + tr.heads.n_params())
    out["teacher_decision_latency_us_p50"] = float(tr.latency_us["p50"])
    out["teacher_decision_latency_us_p99"] = float(tr.latency_us["p99"])
    # The LLM market maker decides with one teacher forward per step: that is its decision latency.
    out["decision_latency_us_p50"] = out["teacher_decision_latency_us_p50"]
    out["decision_latency_us_p99"] = out["teacher_decision_latency_us_p99"]
    out["teacher_samples"] = float(sum(len(f) for f in tr.features.values()))
    out["teacher_replay_stride"] = float(tr.replay_stride)
    result.extra.setdefault("prediction_quality", tr.quality)
    return out


__all__ = ["EXTRA_KEY", "TeacherRun", "hold_predictions", "replay_indices", "split_feature_set"]
