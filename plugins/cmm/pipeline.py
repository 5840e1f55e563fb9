"""Hook implementations of CMM: registration of the probe / students / MoE, and the CMM pipeline.

For a strategy with a ``students`` section, :func:`cmm_bt_compute_signals` runs
teacher → probe → OFDD students → MoE and returns the mixture's ``pred_mid``, ``pred_spread``,
``pred_volume`` on the replay grid (students are evaluated on *every* grid step, batch, past-only
inputs).  The teacher stage is the LLM plugin's own (``cmm_bt_plugins.llm.pipeline``), run with
the ``students`` section hidden; its products are kept on ``run.extra["cmm_teacher"]`` (not
``"llm_teacher"``, so the LLM plugin's metrics do not also fire).  Everything of this stage is kept
on ``run.extra["cmm"]`` (a :class:`CMMRun`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cmm_bt import hookimpl
from cmm_bt.errors import ConfigError

from cmm_bt_plugins.cmm.moe import MOE_CLASSES
from cmm_bt_plugins.cmm.probe import FluorescentProbe
from cmm_bt_plugins.cmm.report import QUIET_TABLES, cmm_bt_report_sections  # noqa: F401  (hook implementation)
from cmm_bt_plugins.cmm.students import STUDENT_CLASSES

if TYPE_CHECKING:
    from cmm_bt.data.schema import MarketData
    from cmm_bt.results import RunResult
    from cmm_bt.run import RunSpec

    from cmm_bt_plugins.cmm.ofdd import StudentSet
    from cmm_bt_plugins.cmm.probe import ProbeResult

EXTRA_KEY = "cmm"
TEACHER_KEY = "cmm_teacher"
TASKS = ("mid", "spread", "volume")
SIGNALS = {"mid": "pred_mid", "spread": "pred_spread", "volume": "pred_volume"}
#: Input columns perturbed by the probe's excitation variant, per task.
EXCITATION_FIELDS = {"mid": ["dmid"], "spread": ["spread"], "volume": ["volume", "flow"]}


@hookimpl
def cmm_bt_register_probes(register):
    register(FluorescentProbe, aliases=("nfp",))


@hookimpl
def cmm_bt_register_students(register):
    for cls in STUDENT_CLASSES:
        register(cls)


@hookimpl
def cmm_bt_register_experts(register):
    for cls in MOE_CLASSES:
        register(cls)


@dataclass
class CMMRun:
    """Products of the CMM stage (``run.extra["cmm"]``)."""

    probe: "ProbeResult | None"
    students: "StudentSet"
    moe: Any
    signals: pd.DataFrame
    quality: pd.DataFrame
    weights: pd.DataFrame
    latency_us: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ helpers
def _thin(n: int, max_rows: int | None, keep: np.ndarray) -> np.ndarray:
    """Evenly thinned rows of ``range(n)`` (at most ``max_rows``) plus the rows in ``keep``."""
    if max_rows is None or n <= max_rows:
        return np.arange(n, dtype=np.int64)
    base = np.unique(np.linspace(0, n - 1, max_rows).round().astype(np.int64))
    return np.union1d(base, np.asarray(keep, dtype=np.int64))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def teacher_stage(run: "RunSpec", market: "MarketData", grid: np.ndarray):
    """Run the LLM plugin's teacher stage for a CMM run and return its ``TeacherRun``."""
    from cmm_bt_plugins.llm import pipeline as llm

    if TEACHER_KEY in run.extra:
        return run.extra[TEACHER_KEY]
    shim = dataclasses.replace(run, strategy=run.strategy.model_copy(update={"students": None}))
    llm.cmm_bt_compute_signals(run=shim, market=market, grid=grid)
    tr = run.extra.pop(llm.EXTRA_KEY, None)
    if tr is None:
        raise ConfigError(f"CMM needs the hf-causal-lm teacher (got {run.strategy.teacher.name!r})", file=run.strategy_file, key="teacher")
    run.extra[TEACHER_KEY] = tr
    return tr


def mixture(students: "StudentSet", moe: Any, preds: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
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


def predict_chunked(students: "StudentSet", X: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    parts = [students.predict(X[i : i + chunk]) for i in range(0, len(X), chunk)]
    if not parts:
        return np.zeros((len(students.students), 0, len(students.tasks))), np.zeros((len(students.students), 0, students.common_dim))
    return np.concatenate([p for p, _ in parts], axis=1), np.concatenate([e for _, e in parts], axis=1)


def decision_latency(students: "StudentSet", moe: Any, X: np.ndarray, steps: int) -> dict[str, float]:
    """Wall time of one CMM decision (every student + the fitted mixer, batch 1, CPU), µs: p50 / p99 / mean.

    Timed per decision on the compact path :class:`~cmm_bt_plugins.cmm.fast.FastCMM` (exported
    once, not timed): taking the step's window ``X[i]`` (a view of the past-only window the
    feature set already holds), standardising it, all student forwards, the mixture of every task.
    10 warm-up decisions (numba compilation) are not timed.
    """
    from cmm_bt_plugins.cmm.fast import FastCMM

    n = len(X)
    if n == 0:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "samples": 0.0}
    fast = FastCMM(students, moe)
    times = np.empty(steps)
    for i in range(steps + 10):
        t0 = time.perf_counter_ns()
        fast.decide(X[i % n])
        if i >= 10:
            times[i - 10] = (time.perf_counter_ns() - t0) / 1e3
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "mean": float(times.mean()), "samples": float(steps)}


# ----------------------------------------------------------------------------------- pipeline
@hookimpl
def cmm_bt_register_commands(app):
    from cmm_bt_plugins.cmm.probe_command import probe_command

    app.command(name="probe", help=probe_command.__doc__)(probe_command)


@hookimpl
def cmm_bt_compute_signals(run: "RunSpec", market: "MarketData", grid: np.ndarray):
    st = run.strategy
    if st.students is None:
        return None
    where = str(run.strategy_file) if run.strategy_file else None
    if st.teacher is None:
        raise ConfigError("students need a `teacher:` section to distil", file=where, key="students")
    from cmm_bt_plugins.cmm.ofdd import OFDDTrainer, TeacherData
    from cmm_bt_plugins.cmm.probe import assign_regimes, excitation, field_perturbation, plot_heatmaps, render_heatmaps
    from cmm_bt_plugins.features.quality import quality_table

    console = run.console
    tr = teacher_stage(run, market, grid)
    student = run.registry.create("student", st.students.name, st.students.params, where=where, key="students")
    sc = student.config
    fs_tr, fs_va, fs_rp = tr.feature_sets["train"], tr.feature_sets.get("validation"), tr.feature_sets["replay"]
    if fs_va is None or "validation" not in tr.features:
        raise ConfigError("CMM needs a non-empty validation split (early stopping and MoE fitting)", file=where, key="split")
    f_tr, f_va = tr.features["train"], tr.features["validation"]
    layers = list(f_tr.layers)

    # ---- training arrays: train rows then validation rows (thinned; teacher rows always kept)
    rows_tr = _thin(len(fs_tr), sc.max_train_rows, f_tr.indices)
    rows_va = _thin(len(fs_va), sc.max_train_rows, f_va.indices)
    X = np.concatenate([fs_tr.X[rows_tr], fs_va.X[rows_va]]).astype(np.float32)
    Y = np.concatenate([fs_tr.y()[rows_tr], fs_va.y()[rows_va]])
    valid = np.concatenate([fs_tr.target_valid[rows_tr], fs_va.target_valid[rows_va]])
    Y[~valid] = np.nan
    vol = np.concatenate([fs_tr.realised_vol[rows_tr], fs_va.realised_vol[rows_va]])
    n_tr = len(rows_tr)
    train_idx, val_idx = np.arange(n_tr), n_tr + np.arange(len(rows_va))
    sel = np.concatenate([np.searchsorted(rows_tr, f_tr.indices), n_tr + np.searchsorted(rows_va, f_va.indices)])
    feats = {l: np.concatenate([np.asarray(f_tr.layer(l)), np.asarray(f_va.layer(l))]) for l in layers}
    tpred = np.concatenate([tr.predictions["train"][list(TASKS)].to_numpy(float), tr.predictions["validation"][list(TASKS)].to_numpy(float)])
    teacher = TeacherData(sel, feats, tpred)

    # ---- probe (on the training split's teacher samples)
    probe_res = None
    thresholds = np.zeros(0)
    if st.probe is not None:
        probe = run.registry.create("probe", st.probe.name, st.probe.params, where=where, key="probe")
        if not isinstance(probe, FluorescentProbe):
            raise ConfigError(f"the CMM pipeline drives the fluorescent probe, not {st.probe.name!r}", file=where, key="probe")
        n_sel_tr = len(f_tr.indices)
        tr_rows = np.arange(n_sel_tr)
        ex_map = None
        if probe.config.excitation:
            from cmm_bt_plugins.llm.prompts import render_prompts

            pc = probe.config
            th = np.quantile(vol[sel[:n_sel_tr]][np.isfinite(vol[sel[:n_sel_tr]])], np.arange(1, pc.n_regimes) / pc.n_regimes) if pc.n_regimes > 1 else np.zeros(0)
            pick = np.linspace(0, n_sel_tr - 1, min(pc.excitation_samples, n_sel_tr)).round().astype(int)
            Xe = fs_tr.X[f_tr.indices[pick]]
            names = fs_tr.feature_names
            cols = {t: [names.index(c) for c in EXCITATION_FIELDS[name]] for t, name in enumerate(TASKS)}
            scale = fs_tr.X.reshape(-1, fs_tr.X.shape[-1])[:: max(1, fs_tr.X.shape[0] // 2000)].std(0)
            tcfg = tr.teacher.config

            def hidden_fn(Xb: np.ndarray) -> dict[int, np.ndarray]:
                parts = [tr.teacher._forward(render_prompts(tcfg.prompt, Xb[i : i + tcfg.batch_size], names, fs_tr.spec.levels)) for i in range(0, len(Xb), tcfg.batch_size)]
                return {l: np.concatenate([p[l] for p in parts]) for l in parts[0]}

            ex_map = excitation(hidden_fn, Xe, field_perturbation(cols, pc.perturbation_size, scale), len(TASKS), assign_regimes(fs_tr.realised_vol[f_tr.indices[pick]], th), n_regimes=pc.n_regimes, seed=run.seed)
        probe_res = probe.run({l: feats[l][:n_sel_tr] for l in layers}, Y[sel[:n_sel_tr]], vol[sel[:n_sel_tr]], tr_rows, excitation_map=ex_map)
        thresholds = np.asarray(probe_res.thresholds)
        out = run.cache_dir / "cmm"
        probe_res.save(out / "probe.json")
        try:
            plot_heatmaps(probe_res, out / "probe.png")
        except Exception as err:  # a plot is never worth failing a run
            probe_res.meta["plot_error"] = str(err)
        render_heatmaps(probe_res, console)
        if run.extra.get("probe_only"):  # `cmm-bt probe`: stop after the probe
            run.extra["probe_result"] = probe_res
            return None
    regimes = assign_regimes(vol, thresholds) if probe_res is not None else np.zeros(len(X), dtype=np.int64)

    # ---- students
    trainer = OFDDTrainer(student, seed=run.seed, cache_dir=run.cache_dir / "cmm", console=console)
    students = trainer.fit(X, Y, train_idx, val_idx, teacher, regimes=regimes, probe=probe_res)

    # ---- MoE, fitted on the validation split
    moe_spec = st.moe
    moe = run.registry.create("moe", moe_spec.name if moe_spec else "hajek", moe_spec.params if moe_spec else {}, where=where, key="moe")
    p_va, e_va = predict_chunked(students, X[val_idx])
    for t in range(len(TASKS)):
        ex = students.experts_for(t)
        if ex:
            moe.fit_task(t, p_va[ex, :, t].T, e_va[ex].transpose(1, 0, 2), Y[val_idx, t])

    # ---- replay signals (every grid step)
    p_rp, e_rp = predict_chunked(students, fs_rp.X)
    y_rp, w_rp = mixture(students, moe, p_rp, e_rp)
    y_rp[~fs_rp.book_valid] = np.nan
    signals = pd.DataFrame({SIGNALS[t]: y_rp[:, i] for i, t in enumerate(TASKS)})

    # ---- prediction quality on the replay split
    ok = fs_rp.target_valid & fs_rp.book_valid
    truth = fs_rp.targets[list(TASKS)].reset_index(drop=True)
    models = {"cmm": pd.DataFrame(y_rp, columns=list(TASKS)), "naive": fs_rp.naive().reset_index(drop=True)}
    for k, s in enumerate(students.students):
        models[f"student:{s.spec.key}"] = pd.DataFrame(p_rp[k], columns=list(TASKS))
    q_all = quality_table(truth, models, ok)
    q_all.insert(0, "rows", "all")
    t_rows = tr.features["replay"].indices
    tmask = ok[t_rows]
    t_models = {name: models[name].iloc[t_rows].reset_index(drop=True) for name in ("cmm", "naive")}
    t_models["teacher"] = tr.predictions["replay"][list(TASKS)].reset_index(drop=True)
    q_t = quality_table(truth.iloc[t_rows].reset_index(drop=True), t_models, tmask)
    q_t.insert(0, "rows", "teacher")
    quality = pd.concat([q_all, q_t], ignore_index=True)
    quality = quality[quality["n"] > 0].reset_index(drop=True)
    quality.insert(0, "split", run.replay_split)

    # ---- mixture weights by task, expert, family and regime (replay)
    reg_rp = assign_regimes(fs_rp.realised_vol, thresholds) if probe_res is not None else np.zeros(len(fs_rp), dtype=np.int64)
    rnames = probe_res.regimes if probe_res is not None else ["all"]
    wrows = []
    for t, w in w_rp.items():
        ex = students.experts_for(t)
        for r, rname in enumerate(rnames):
            m = (reg_rp == r) & fs_rp.book_valid
            if not m.any():
                continue
            for j, k in enumerate(ex):
                s = students.students[k]
                wrows.append({"task": TASKS[t], "regime": rname, "expert": s.spec.key, "family": s.spec.family, "mean_weight": float(w[m, j].mean()), "n": int(m.sum())})
    weights = pd.DataFrame(wrows, columns=["task", "regime", "expert", "family", "mean_weight", "n"])

    lat_fs = fs_rp if fs_rp.book_valid.any() else fs_tr
    lat_rows = np.flatnonzero(fs_rp.book_valid) if lat_fs is fs_rp else np.arange(len(fs_tr))
    lat_rows = lat_rows[np.unique(np.linspace(0, len(lat_rows) - 1, min(len(lat_rows), sc.latency_steps)).round().astype(np.int64))] if len(lat_rows) else lat_rows
    latency = decision_latency(students, moe, lat_fs.X[lat_rows], sc.latency_steps)
    run.extra[EXTRA_KEY] = CMMRun(probe_res, students, moe, signals, quality, weights, latency, info={"rows_train": int(n_tr), "rows_validation": int(len(val_idx))})
    run.extra["quiet_tables"] = QUIET_TABLES
    tables = run.extra.setdefault("tables", {})
    tables["prediction_quality"] = quality
    tables["cmm_weights"] = weights
    tables["cmm_weights_by_family"] = weights.groupby(["task", "regime", "family"], as_index=False)["mean_weight"].sum() if len(weights) else weights
    tables["cmm_students"] = pd.DataFrame([{"student": s.spec.key, "family": s.spec.family, "tasks": ",".join(TASKS[t] for t in s.spec.tasks), "band": ",".join(map(str, s.spec.band)), "regime": -1 if s.spec.regime is None else s.spec.regime, "params": s.n_params, "cached": s.cached, **{k: v for k, v in s.meta.items() if isinstance(v, (int, float))}} for s in students.students])
    if probe_res is not None:
        tables["probe"] = pd.DataFrame([{"layer": l, "task": TASKS[t], "regime": rn, "phi": probe_res.phi[i, t, r], "Phi": probe_res.Phi[i, t, r], "peak": bool(probe_res.peak_start[t, r] <= i < probe_res.peak_end[t, r])} for i, l in enumerate(probe_res.layers) for t in range(len(TASKS)) for r, rn in enumerate(probe_res.regimes)])
    return signals


@hookimpl
def cmm_bt_extra_metrics(run: "RunSpec", result: "RunResult"):
    cr: CMMRun | None = run.extra.get(EXTRA_KEY)
    if cr is None:
        return None
    tr = run.extra.get(TEACHER_KEY)
    out: dict[str, float] = {}
    q = cr.quality
    for _, row in q.iterrows():
        model, task = row["model"], row["task"]
        # pred_* / naive_* / teacher_pred_* on the rows the teacher predicted (the LLM market maker's
        # pred_* use the same rows, so the study compares like with like); pred_all_steps_* on every step.
        if row["rows"] == "teacher" and model in ("cmm", "naive", "teacher"):
            prefix = {"cmm": "pred", "naive": "naive", "teacher": "teacher_pred"}[model]
        elif row["rows"] == "all" and model == "cmm":
            prefix = "pred_all_steps"
        elif row["rows"] == "all" and model.startswith("student:"):
            prefix = f"student_{_safe(model.split(':', 1)[1])}_pred"
        else:
            continue
        for m in ("mae", "rmse", "r2"):
            out[f"{prefix}_{m}_{task}"] = float(row[m])
        if task == "mid":
            out[f"{prefix}_diracc_mid"] = float(row["diracc"])
    out["model_params"] = float(cr.students.n_params)
    out["students"] = float(len(cr.students.students))
    out["cmm_decision_latency_us_p50"] = cr.latency_us["p50"]
    out["cmm_decision_latency_us_p99"] = cr.latency_us["p99"]
    # CMM decides with all students + the MoE per step: that is its decision latency.
    out["decision_latency_us_p50"] = out["cmm_decision_latency_us_p50"]
    out["decision_latency_us_p99"] = out["cmm_decision_latency_us_p99"]
    if tr is not None:
        out["teacher_decision_latency_us_p50"] = float(tr.latency_us["p50"])
        out["teacher_decision_latency_us_p99"] = float(tr.latency_us["p99"])
        out["teacher_params"] = float(tr.teacher.n_params())
        if cr.latency_us["p50"] > 0:
            out["cmm_speedup_p50"] = float(tr.latency_us["p50"]) / cr.latency_us["p50"]
    if cr.probe is not None and np.isfinite(cr.probe.specialisation).any():
        out["probe_specialisation_index"] = float(np.nanmean(cr.probe.specialisation))
    return out


__all__ = ["CMMRun", "EXTRA_KEY", "decision_latency", "mixture", "teacher_stage"]
