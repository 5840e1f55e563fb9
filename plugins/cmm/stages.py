"""The CMM pipeline stages: probe → distillation data → OFDD students → mixture → signals.

::

    teacher-features ──> probe (cached) ─────────────┐
    teacher-heads ──> distillation-data ──> students (cached) ──> mixture ──> cmm-signals
                                   └───────────────────────────────┘

They build on the teacher section's products (:mod:`cmm_bt_plugins.llm.stages`) and replace its
fallback signals: the mixture's ``pred_mid``, ``pred_spread``, ``pred_volume`` on *every* replay
step (batch, past-only inputs).  Each stage reads and returns typed products
(:mod:`cmm_bt_plugins.models.products`, :class:`~cmm_bt_plugins.cmm.probe.ProbeResult`,
:class:`~cmm_bt_plugins.cmm.ofdd.StudentSet`), so each can be run and tested alone.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt.energy import ENERGY_TABLE, energy_metrics, energy_row
from cmm_bt.errors import ConfigError
from cmm_bt.pipeline import Signals, Stage, StageContext

from cmm_bt_plugins.cmm.ofdd import StudentSet, TeacherData
from cmm_bt_plugins.cmm.probe import ProbeResult, assign_regimes
from cmm_bt_plugins.cmm.report import QUIET_TABLES
from cmm_bt_plugins.models.products import (
    FittedMixture,
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
    from cmm_bt.energy import EnergyEstimate
    from cmm_bt.run import RunSpec

    from cmm_bt_plugins.models.interfaces import MoE, Probe, Student


# ------------------------------------------------------------------------------------ product
@dataclass
class DistillationSet:
    """The students' training arrays: train rows then validation rows (thinned; teacher rows kept).

    :ivar X: ``float32 [N, W, F]`` windows; :ivar Y: ``[N, T]`` targets (NaN = invalid);
    :ivar realised_vol: ``[N]``; :ivar train_idx, val_idx: rows of each split;
    :ivar teacher: the teacher's features and predictions on its rows (``teacher.sel_idx``).
    """

    X: np.ndarray
    Y: np.ndarray
    realised_vol: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    teacher: TeacherData


# ------------------------------------------------------------------------------------ helpers
def thin(n: int, max_rows: int | None, keep: np.ndarray) -> np.ndarray:
    """Evenly thinned rows of ``range(n)`` (at most ``max_rows``) plus the rows in ``keep``."""
    if max_rows is None or n <= max_rows:
        return np.arange(n, dtype=np.int64)
    base = np.unique(np.linspace(0, n - 1, max_rows).round().astype(np.int64))
    return np.union1d(base, np.asarray(keep, dtype=np.int64))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def mix_experts(students: StudentSet, moe: "MoE", preds: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """``ŷ [N, T]`` and weights per task ``{t: [N, K_t]}`` from expert outputs ``preds [K, N, T]``, ``emb [K, N, D]``."""
    N = preds.shape[1]
    out = np.full((N, len(students.tasks)), np.nan)
    weights = {}
    for t in range(len(students.tasks)):
        ex = students.experts_for(t)
        if not ex:
            continue
        y, w = moe.combine(t, preds[ex, :, t].T, emb[ex].transpose(1, 0, 2))
        out[:, t], weights[t] = y, w
    return out, weights


def predict_chunked(students: StudentSet, X: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    parts = [students.predict(X[i : i + chunk]) for i in range(0, len(X), chunk)]
    if not parts:
        return np.zeros((len(students.students), 0, len(students.tasks))), np.zeros((len(students.students), 0, students.common_dim))
    return np.concatenate([p for p, _ in parts], axis=1), np.concatenate([e for _, e in parts], axis=1)


def decision_latency(students: StudentSet, moe: "MoE", X: np.ndarray, steps: int, *, step_rows: np.ndarray | None = None,
                     energy: bool = True) -> dict[str, Any]:
    """Wall time of one CMM decision (every student + the fitted mixer, batch 1, CPU), µs: p50 / p99 / mean.

    With ``step_rows`` (``[m, F]`` consecutive per-step features, e.g. ``FeatureSet.steps[i0:]``:
    the window of a decision is ``W`` consecutive rows) and a set the incremental path supports
    (MLP students mixed by ``hajek``, the default CMM), the timed decisions are consecutive replay
    steps on :class:`~cmm_bt_plugins.cmm.incremental.IncrementalCMM`: each is one compiled call that
    standardises and compresses the new step row, updates the students' window rings, runs every
    student and the mixture of every task.  The rings are filled from the first window untimed (and
    again, untimed, when the rows run out).  Otherwise each decision is
    :class:`~cmm_bt_plugins.cmm.fast.FastCMM` on a whole window ``X[i]`` (a view the feature set
    already holds).  Exporting the weights and 10 warm-up decisions (numba compilation) are not
    timed.  ``path`` names the path timed, ``times`` holds every decision's µs.  ``energy`` is the
    same path's CPU time and energy per decision (:func:`cmm_bt.energy.measure_energy`, after the
    timed decisions; None when turned off).
    """
    from cmm_bt.energy import measure_energy
    from cmm_bt_plugins.cmm.incremental import IncrementalCMM, supports

    times = np.empty(steps)
    perf = time.perf_counter_ns
    W = int(X.shape[1]) if X.ndim == 3 else 0
    if step_rows is not None and W and len(step_rows) > W and supports(students, moe):
        rows = np.ascontiguousarray(step_rows, dtype=np.float32)
        inc = IncrementalCMM(students, moe)
        inc.reset(rows[:W])
        r, m, step = W, len(rows), inc.stepper(rows)
        for i in range(steps + 10):
            if r >= m:
                inc.reset(rows[:W])
                r = W
            t0 = perf()
            step(r)
            t1 = perf()
            r += 1
            if i >= 10:
                times[i - 10] = (t1 - t0) / 1e3
        path = "incremental"
        ring = {"r": r}

        def decide(_: int) -> None:
            if ring["r"] >= m:
                inc.reset(rows[:W])
                ring["r"] = W
            step(ring["r"])
            ring["r"] += 1
    else:
        from cmm_bt_plugins.cmm.fast import FastCMM

        n = len(X)
        if n == 0:
            return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "samples": 0.0, "path": "none"}
        fast = FastCMM(students, moe)
        for i in range(steps + 10):
            t0 = perf()
            fast.decide(X[i % n])
            if i >= 10:
                times[i - 10] = (perf() - t0) / 1e3
        path = "windows"

        def decide(i: int) -> None:
            fast.decide(X[i % n])
    energy = measure_energy(decide, min_decisions=steps) if energy else None
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "mean": float(times.mean()),
            "samples": float(steps), "path": path, "times": times, "energy": energy}


# ------------------------------------------------------------------------------------- stages
class ProbeStage(Stage):
    """The probe on the training split's teacher samples (cached; heat maps printed when computed)."""

    provides = ProbeResult
    requires = {"windows": TrainingWindows, "features": TeacherFeatures, "model": TeacherModel}
    cacheable = True

    def __init__(self, probe: "Probe"):
        super().__init__("probe", probe.name)
        self.probe = probe

    def identity(self, ctx: StageContext) -> Any:
        return {"probe": self.probe.config.model_dump(mode="json"), "seed": ctx.seed}

    def run(self, ctx: StageContext, windows: TrainingWindows, features: TeacherFeatures, model: TeacherModel) -> ProbeResult:
        from cmm_bt_plugins.cmm.probe import render_heatmaps

        fs, f = windows.train, features.train
        rows = f.indices
        Y = fs.y()[rows]
        Y[~fs.target_valid[rows]] = np.nan
        scale = fs.X.reshape(-1, fs.X.shape[-1])[:: max(1, fs.X.shape[0] // 2000)].std(0)
        result = self.probe.probe({l: np.asarray(f.layer(l)) for l in f.layers}, Y, fs.realised_vol[rows],
                                  windows=fs.X[rows], hidden_states=lambda X: _batched(model.teacher, X, fs),
                                  feature_names=fs.feature_names, input_scale=scale, seed=ctx.seed)
        render_heatmaps(result, ctx.console)
        return result

    def save(self, product: ProbeResult, folder: Path) -> None:
        from cmm_bt_plugins.cmm.probe import plot_heatmaps

        product.save(folder / "probe.json")
        try:
            plot_heatmaps(product, folder / "probe.png")
        except Exception as err:  # noqa: BLE001 - a plot is never worth failing a run
            product.meta["plot_error"] = str(err)

    def load(self, folder: Path, ctx: StageContext) -> ProbeResult:
        return ProbeResult.load(folder / "probe.json")


def _batched(teacher, X: np.ndarray, fs) -> dict[int, np.ndarray]:
    """The teacher's hidden states of windows ``X``, ``batch_size`` at a time."""
    bs = teacher.config.batch_size
    parts = [teacher.hidden_states(X[i : i + bs], fs) for i in range(0, len(X), bs)]
    return {l: np.concatenate([p[l] for p in parts]) for l in parts[0]}


class DistillationDataStage(Stage):
    """Train and validation windows (thinned to ``max_train_rows``), targets and the teacher's rows."""

    provides = DistillationSet
    requires = {"windows": TrainingWindows, "features": TeacherFeatures, "predictions": TeacherPredictions}

    def __init__(self, student: "Student"):
        super().__init__("distillation-data", student.name)
        self.max_rows = student.config.max_train_rows

    def identity(self, ctx: StageContext) -> Any:
        return {"max_train_rows": self.max_rows}

    def run(self, ctx: StageContext, windows: TrainingWindows, features: TeacherFeatures, predictions: TeacherPredictions) -> DistillationSet:
        fs_tr, fs_va, f_tr, f_va = windows.train, windows.validation, features.train, features.validation
        if fs_va is None or f_va is None:
            raise ConfigError("CMM needs a non-empty validation split (early stopping and MoE fitting)", file=ctx.run.where, key="split")
        rows_tr = thin(len(fs_tr), self.max_rows, f_tr.indices)
        rows_va = thin(len(fs_va), self.max_rows, f_va.indices)
        X = np.concatenate([fs_tr.X[rows_tr], fs_va.X[rows_va]]).astype(np.float32)
        Y = np.concatenate([fs_tr.y()[rows_tr], fs_va.y()[rows_va]])
        Y[~np.concatenate([fs_tr.target_valid[rows_tr], fs_va.target_valid[rows_va]])] = np.nan
        vol = np.concatenate([fs_tr.realised_vol[rows_tr], fs_va.realised_vol[rows_va]])
        n_tr = len(rows_tr)
        sel = np.concatenate([np.searchsorted(rows_tr, f_tr.indices), n_tr + np.searchsorted(rows_va, f_va.indices)])
        feats = {l: np.concatenate([np.asarray(f_tr.layer(l)), np.asarray(f_va.layer(l))]) for l in f_tr.layers}
        tpred = np.concatenate([predictions.predictions[s][list(TASKS)].to_numpy(float) for s in ("train", "validation")])
        return DistillationSet(X, Y, vol, np.arange(n_tr), n_tr + np.arange(len(rows_va)), TeacherData(sel, feats, tpred))


class StudentsStage(Stage):
    """OFDD students distilled from the teacher (cached unless ``students.params.cache`` is false)."""

    provides = StudentSet
    requires = {"data": DistillationSet}
    optional = {"probe": ProbeResult}

    def __init__(self, student: "Student"):
        super().__init__("students", student.name)
        self.student = student
        self.cacheable = bool(getattr(student.config, "cache", True))

    def identity(self, ctx: StageContext) -> Any:
        return {"student": self.student.name, "config": self.student.config.model_dump(mode="json"), "seed": ctx.seed}

    def run(self, ctx: StageContext, data: DistillationSet, probe: ProbeResult | None = None) -> StudentSet:
        regimes = assign_regimes(data.realised_vol, np.asarray(probe.thresholds)) if probe is not None else np.zeros(len(data.X), dtype=np.int64)
        return self.student.distil(data.teacher, data.X, data.Y, data.train_idx, data.val_idx, regimes=regimes, probe=probe, seed=ctx.seed, console=ctx.console)

    def save(self, product: StudentSet, folder: Path) -> None:
        self.student.save(product, folder)

    def load(self, folder: Path, ctx: StageContext) -> StudentSet:
        return self.student.load(folder)


class MixtureStage(Stage):
    """The mixture of experts, fitted per task on the validation rows."""

    provides = FittedMixture
    requires = {"students": StudentSet, "data": DistillationSet}

    def __init__(self, moe: "MoE"):
        super().__init__("mixture", moe.name)
        self.moe = moe

    def identity(self, ctx: StageContext) -> Any:
        return {"moe": self.moe.name, "config": self.moe.config.model_dump(mode="json")}

    def run(self, ctx: StageContext, students: StudentSet, data: DistillationSet) -> FittedMixture:
        p_va, e_va = predict_chunked(students, data.X[data.val_idx])
        for t in range(len(TASKS)):
            ex = students.experts_for(t)
            if ex:
                self.moe.fit_task(t, p_va[ex, :, t].T, e_va[ex].transpose(1, 0, 2), data.Y[data.val_idx, t])
        return FittedMixture(self.moe, {"rows_train": int(len(data.train_idx)), "rows_validation": int(len(data.val_idx))})


@dataclass
class CMMLatency:
    """CMM's decision latency at batch 1 (all students + the mixture), µs; its energy per decision."""

    p50: float
    p99: float
    mean: float
    energy: "EnergyEstimate | None" = None
    path: str = ""


class CMMLatencyStage(Stage):
    """Times CMM's decisions on consecutive replay steps (measured every run, never cached; see :func:`decision_latency`)."""

    provides = CMMLatency
    requires = {"students": StudentSet, "mixture": FittedMixture, "replay": ReplayWindows, "windows": TrainingWindows}

    def __init__(self, student: "Student"):
        super().__init__("cmm-latency", student.name)
        self.steps = student.config.latency_steps

    def identity(self, ctx: StageContext) -> Any:
        return {"latency_steps": self.steps}

    def run(self, ctx: StageContext, students: StudentSet, mixture: FittedMixture, replay: ReplayWindows, windows: TrainingWindows) -> CMMLatency:
        fs_rp, fs_tr = replay.replay, windows.train
        fs = fs_rp if fs_rp.book_valid.any() else fs_tr
        rows = np.flatnonzero(fs_rp.book_valid) if fs is fs_rp else np.arange(len(fs_tr))
        # consecutive replay steps from the first one with a book: fs.steps[i0 + W - 1] is step i0's
        # row, so fs.steps[i0:] starts with its window
        i0 = int(rows[0]) if len(rows) else 0
        if len(rows):
            rows = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), self.steps)).round().astype(np.int64))]
        lat = decision_latency(students, mixture.moe, fs.X[rows], self.steps, step_rows=fs.steps[i0:])
        return CMMLatency(lat["p50"], lat["p99"], lat["mean"], lat["energy"], lat["path"])


class CMMSignalsStage(Stage):
    """The mixture's predictions on every replay step, their quality, mixture weights and latency."""

    provides = Signals
    requires = {"students": StudentSet, "mixture": FittedMixture, "replay": ReplayWindows, "replay_features": ReplayTeacherFeatures,
                "predictions": TeacherPredictions, "latency": CMMLatency, "teacher_latency": TeacherLatency, "model": TeacherModel}
    optional = {"probe": ProbeResult, "features": TeacherFeatures}

    def identity(self, ctx: StageContext) -> Any:
        return None

    def run(self, ctx: StageContext, students: StudentSet, mixture: FittedMixture, replay: ReplayWindows, replay_features: ReplayTeacherFeatures,
            predictions: TeacherPredictions, latency: CMMLatency, teacher_latency: TeacherLatency, model: TeacherModel,
            probe: ProbeResult | None = None, features: TeacherFeatures | None = None) -> Signals:
        from cmm_bt_plugins.features.quality import quality_table

        fs_rp, moe = replay.replay, mixture.moe
        p_rp, e_rp = predict_chunked(students, fs_rp.X)
        y_rp, w_rp = mix_experts(students, moe, p_rp, e_rp)
        y_rp[~fs_rp.book_valid] = np.nan
        frame = pd.DataFrame({SIGNAL_COLUMNS[t]: y_rp[:, i] for i, t in enumerate(TASKS)})

        # prediction quality on every replay step and on the rows the teacher predicted
        ok = fs_rp.target_valid & fs_rp.book_valid
        truth = fs_rp.targets[list(TASKS)].reset_index(drop=True)
        models = {"cmm": pd.DataFrame(y_rp, columns=list(TASKS)), "naive": fs_rp.naive().reset_index(drop=True)}
        for k, s in enumerate(students.students):
            models[f"student:{s.spec.key}"] = pd.DataFrame(p_rp[k], columns=list(TASKS))
        q_all = quality_table(truth, models, ok)
        q_all.insert(0, "rows", "all")
        t_rows = replay_features.replay.indices
        t_models = {name: models[name].iloc[t_rows].reset_index(drop=True) for name in ("cmm", "naive")}
        t_models["teacher"] = predictions.predictions["replay"][list(TASKS)].reset_index(drop=True)
        q_t = quality_table(truth.iloc[t_rows].reset_index(drop=True), t_models, ok[t_rows])
        q_t.insert(0, "rows", "teacher")
        quality = pd.concat([q_all, q_t], ignore_index=True)
        quality = quality[quality["n"] > 0].reset_index(drop=True)
        quality.insert(0, "split", replay.split)

        weights = self._weights(students, fs_rp, w_rp, probe)

        tables = {
            "prediction_quality": quality,
            "cmm_weights": weights,
            "cmm_weights_by_family": weights.groupby(["task", "regime", "family"], as_index=False)["mean_weight"].sum() if len(weights) else weights,
            "cmm_students": pd.DataFrame([{"student": s.spec.key, "family": s.spec.family, "tasks": ",".join(TASKS[t] for t in s.spec.tasks),
                                           "band": ",".join(map(str, s.spec.band)), "regime": -1 if s.spec.regime is None else s.spec.regime,
                                           "params": s.n_params, **{k: v for k, v in s.meta.items() if isinstance(v, (int, float))}}
                                          for s in students.students]),
        }
        if probe is not None:
            tables["probe"] = pd.DataFrame([{"layer": l, "task": TASKS[t], "regime": rn, "phi": probe.phi[i, t, r], "Phi": probe.Phi[i, t, r],
                                             "peak": bool(probe.peak_start[t, r] <= i < probe.peak_end[t, r]),
                                             "informative": bool(probe.informative[t, r])}
                                            for i, l in enumerate(probe.layers) for t in range(len(TASKS)) for r, rn in enumerate(probe.regimes)])
        metrics = cmm_metrics(quality, students, latency, teacher_latency, model.teacher.n_params(), probe)
        if features is not None:
            metrics.update(teacher_sample_counts(features, replay_features))
        energy = [energy_row("cmm", latency.energy, f"students + MoE, {latency.path} path, batch 1")] if latency.energy else []
        if teacher_latency.energy is not None:
            energy.append(energy_row("teacher", teacher_latency.energy, "one teacher forward per decision, batch 1"))
        if energy:
            tables[ENERGY_TABLE] = pd.DataFrame(energy)
        metrics.update(energy_metrics(latency.energy))
        metrics.update(energy_metrics(latency.energy, "cmm_"))
        metrics.update(energy_metrics(teacher_latency.energy, "teacher_"))
        return Signals(frame, metrics, tables, QUIET_TABLES)

    @staticmethod
    def _weights(students: StudentSet, fs_rp, w_rp: dict[int, np.ndarray], probe: ProbeResult | None) -> pd.DataFrame:
        """Mean mixture weight by task, expert, family and regime on the replay split."""
        thresholds = np.asarray(probe.thresholds) if probe is not None else np.zeros(0)
        reg = assign_regimes(fs_rp.realised_vol, thresholds) if probe is not None else np.zeros(len(fs_rp), dtype=np.int64)
        rows = []
        for t, w in w_rp.items():
            ex = students.experts_for(t)
            for r, rname in enumerate(probe.regimes if probe is not None else ["all"]):
                m = (reg == r) & fs_rp.book_valid
                if not m.any():
                    continue
                for j, k in enumerate(ex):
                    s = students.students[k]
                    rows.append({"task": TASKS[t], "regime": rname, "expert": s.spec.key, "family": s.spec.family, "mean_weight": float(w[m, j].mean()), "n": int(m.sum())})
        return pd.DataFrame(rows, columns=["task", "regime", "expert", "family", "mean_weight", "n"])


def cmm_metrics(quality: pd.DataFrame, students: StudentSet, cmm_latency: CMMLatency, teacher_latency: TeacherLatency,
                teacher_params: int, probe: ProbeResult | None) -> dict[str, float]:
    """Flat metrics of a CMM / KD run (see docs/metrics.md)."""
    out: dict[str, float] = {}
    for row in quality.itertuples(index=False):
        model, task = row.model, row.task
        # pred_* / naive_* / teacher_pred_* on the rows the teacher predicted (the LLM market maker's
        # pred_* use the same rows, so the study compares like with like); pred_all_steps_* on every step.
        if row.rows == "teacher" and model in ("cmm", "naive", "teacher"):
            prefix = {"cmm": "pred", "naive": "naive", "teacher": "teacher_pred"}[model]
        elif row.rows == "all" and model == "cmm":
            prefix = "pred_all_steps"
        elif row.rows == "all" and model.startswith("student:"):
            prefix = f"student_{_safe(model.split(':', 1)[1])}_pred"
        else:
            continue
        for m in ("mae", "rmse", "r2"):
            out[f"{prefix}_{m}_{task}"] = float(getattr(row, m))
        if task == "mid":
            out[f"{prefix}_diracc_mid"] = float(row.diracc)
    out["model_params"] = float(students.n_params)
    out["students"] = float(len(students.students))
    out["cmm_decision_latency_us_p50"] = cmm_latency.p50
    out["cmm_decision_latency_us_p99"] = cmm_latency.p99
    # CMM decides with all students + the MoE per step: that is its decision latency.
    out["decision_latency_us_p50"] = cmm_latency.p50
    out["decision_latency_us_p99"] = cmm_latency.p99
    out["teacher_decision_latency_us_p50"] = float(teacher_latency.p50)
    out["teacher_decision_latency_us_p99"] = float(teacher_latency.p99)
    out["teacher_params"] = float(teacher_params)
    if cmm_latency.p50 > 0:
        out["cmm_speedup_p50"] = float(teacher_latency.p50) / cmm_latency.p50
    if probe is not None and np.isfinite(probe.specialisation).any():
        out["probe_specialisation_index"] = float(np.nanmean(probe.specialisation))
    if probe is not None:
        for k in ("n_fit", "n_held_out"):
            if isinstance(probe.meta.get(k), (int, float)):
                out[f"probe_samples_{k.removeprefix('n_')}"] = float(probe.meta[k])
    return out


# ------------------------------------------------------------------------------- the sections
def probe_stages(run: "RunSpec", spec: "ComponentSpec") -> list[Stage]:
    return [ProbeStage(run.registry.create("probe", spec.name, spec.params, where=run.where, key="probe"))]


def student_stages(run: "RunSpec", spec: "ComponentSpec") -> list[Stage]:
    """Distillation data, students, the mixture (the ``moe`` section, default ``hajek``) and the signals."""
    if run.strategy.section("teacher") is None:
        raise ConfigError("students need a `teacher:` section to distil", file=run.where, key="students")
    student = run.registry.create("student", spec.name, spec.params, where=run.where, key="students")
    moe_spec = run.strategy.section("moe")
    moe = run.registry.create("moe", moe_spec.name if moe_spec else "hajek", moe_spec.params if moe_spec else {}, where=run.where, key="moe")
    return [DistillationDataStage(student), StudentsStage(student), MixtureStage(moe), CMMLatencyStage(student), CMMSignalsStage("cmm-signals", student.name)]


__all__ = ["CMMLatency", "DistillationSet", "cmm_metrics", "decision_latency", "mix_experts", "predict_chunked", "probe_stages", "student_stages", "thin"]
