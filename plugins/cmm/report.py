"""The CMM section of the terminal report: CMM against its teacher, prediction quality, mixture
weights by family and regime, the students and the probe's peak bands.

Rendered by ``cmm_bt_report_sections`` (re-exported by :mod:`cmm_bt_plugins.cmm.pipeline`) from
the run's metrics and the tables the pipeline wrote (:data:`QUIET_TABLES`, which the generic table
dump of the rich report skips).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rich.table import Table

from cmm_bt import hookimpl
from cmm_bt.formatting import fmt_value, is_missing

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult

#: Tables of the CMM pipeline that only this section prints.
QUIET_TABLES = ("prediction_quality", "cmm_weights", "cmm_weights_by_family", "cmm_students", "probe")


def latency_table(m: dict) -> Table:
    """Per-decision latency and size of CMM next to the teacher's, and their ratio."""
    t = Table(title="CMM against its teacher (per decision, batch 1, CPU)", title_justify="left")
    for col in ("", "CMM (students + MoE)", "LLM teacher", "teacher / CMM"):
        t.add_column(col, justify="left" if not col else "right")
    for label, key, kind in (("latency p50 (µs)", "decision_latency_us_p50", "us"),
                             ("latency p99 (µs)", "decision_latency_us_p99", "us"),
                             ("CPU time per decision (µs)", "cpu_us_per_decision", "us"),
                             ("energy per decision (J, codecarbon)", "energy_per_decision_j", "float"),
                             ("parameters", "params", "int")):
        cmm = m.get("cmm_" + key if key != "params" else "model_params")
        teacher = m.get("teacher_" + key if key != "params" else "teacher_params")
        if kind != "int" and is_missing(cmm) and is_missing(teacher):
            continue
        ratio = teacher / cmm if not (is_missing(cmm) or is_missing(teacher)) and cmm else None
        t.add_row(label, fmt_value(cmm, kind), fmt_value(teacher, kind), "—" if ratio is None else f"{ratio:,.0f}×")
    return t


def quality_table(q: pd.DataFrame, split: str) -> Table:
    """MAE per task: naive, teacher and mixture on the teacher's rows; mixture and best student on every step."""
    t = Table(title=f"Prediction quality, {split} split (MAE; R² in brackets)", title_justify="left")
    for col in ("task", "naive", "teacher", "CMM", "CMM, every step", "best student, every step"):
        t.add_column(col, justify="left" if col == "task" else "right")

    def cell(rows: str, model: str, task: str) -> str:
        r = q[(q["rows"] == rows) & (q["model"] == model) & (q["task"] == task)]
        return "—" if r.empty else f"{r['mae'].iloc[0]:.4g} ({r['r2'].iloc[0]:+.2f})"

    for task in dict.fromkeys(q["task"]):
        students = q[(q["rows"] == "all") & q["model"].str.startswith("student:") & (q["task"] == task)]
        best = students.loc[students["mae"].idxmin()] if len(students) else None
        t.add_row(task, cell("teacher", "naive", task), cell("teacher", "teacher", task), cell("teacher", "cmm", task),
                  cell("all", "cmm", task),
                  "—" if best is None else f"{best['mae']:.4g} {best['model'].removeprefix('student:')}")
    return t


def weights_table(w: pd.DataFrame) -> Table:
    """Mean mixture weight per family, one row per task and regime."""
    families = list(dict.fromkeys(w["family"]))
    t = Table(title="Mixture weights by family (replay mean)", title_justify="left")
    t.add_column("task")
    t.add_column("regime")
    for f in families:
        t.add_column(f, justify="right")
    for (task, regime), g in w.groupby(["task", "regime"], sort=False):
        by = dict(zip(g["family"], g["mean_weight"]))
        t.add_row(task, regime, *(f"{by[f]:.2f}" if f in by else "—" for f in families))
    return t


def students_table(s: pd.DataFrame, q: pd.DataFrame | None) -> Table:
    """One row per student: layer band, parameters, training outcome and its MAE per task (every step)."""
    t = Table(title=f"Students ({int(s['params'].sum()):,} parameters together)", title_justify="left")
    mine = q[(q["rows"] == "all") & q["model"].str.startswith("student:")] if q is not None and len(q) else None
    tasks = list(dict.fromkeys(mine["task"])) if mine is not None else []
    t.add_column("student", no_wrap=True, min_width=max(len(str(k)) for k in s["student"]))
    for col in ("layers", "params", "epochs (best)", "val loss", *(f"MAE {k}" for k in tasks)):
        t.add_column(col, justify="left" if col == "layers" else "right")
    for r in s.itertuples(index=False):
        mae = {} if mine is None else dict(zip(*mine[mine["model"] == f"student:{r.student}"][["task", "mae"]].to_numpy().T))
        band = [int(x) for x in str(r.band).split(",") if x != ""]
        layers = "—" if not band else f"{band[0]}–{band[-1]}" if band == list(range(band[0], band[-1] + 1)) else str(r.band)
        epochs = f"{int(r.epochs)} ({int(r.best_epoch)})" if "epochs" in s and "best_epoch" in s else "—"
        val = f"{r.val_loss:.4g}" if "val_loss" in s else "—"
        t.add_row(r.student, layers, f"{int(r.params):,}", epochs, val, *(f"{mae[k]:.4g}" if k in mae else "—" for k in tasks))
    return t


def probe_table(p: pd.DataFrame) -> Table:
    """Peak layer band (and its mean Φ) per task and regime."""
    t = Table(title="Probe: peak layer band per task and regime", title_justify="left")
    regimes = list(dict.fromkeys(p["regime"]))
    t.add_column("task")
    for r in regimes:
        t.add_column(r, justify="right")
    for task in dict.fromkeys(p["task"]):
        cells = []
        for r in regimes:
            g = p[(p["task"] == task) & (p["regime"] == r) & p["peak"]]
            cells.append("—" if g.empty else f"{g['layer'].min()}–{g['layer'].max()}  Φ {np.nanmean(g['Phi']):.2f}")
        t.add_row(task, *cells)
    return t


def probe_bands(p: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``{task: {regime: "layers a–b, Φ x"}}`` of the probe table; "no layer informative" where the
    probe found no layer with a positive held-out fit (its band is then only a tie-break)."""
    out: dict[str, dict[str, str]] = {}
    for task in dict.fromkeys(p["task"]):
        out[str(task)] = {}
        for r in dict.fromkeys(p["regime"]):
            g = p[(p["task"] == task) & (p["regime"] == r)]
            peak = g[g["peak"]]
            if "informative" in g and not bool(g["informative"].any()):
                cell = "no layer informative"
            elif peak.empty:
                cell = "—"
            else:
                cell = f"layers {peak['layer'].min()}–{peak['layer'].max()}, Φ {np.nanmean(peak['Phi']):.2f}"
            out[str(task)][str(r)] = cell
    return out


@hookimpl
def cmm_bt_study_notes(result: "RunResult"):
    """What the probe found (peak band per task and regime, specialisation index, its samples)."""
    p = result.extra.get("probe")
    if p is None or not len(p):
        return None
    m = result.metrics
    notes: dict = {"probe peak bands": probe_bands(p)}
    if not is_missing(m.get("probe_specialisation_index")):
        notes["probe specialisation index"] = round(float(m["probe_specialisation_index"]), 4)
    if not is_missing(m.get("probe_samples_fit")):
        notes["probe samples (fit / held out)"] = f"{int(m['probe_samples_fit'])} / {int(m.get('probe_samples_held_out') or 0)}"
    return notes


@hookimpl
def cmm_bt_report_sections(result: "RunResult", console: "Console") -> None:
    ex = result.extra
    if "cmm_students" not in ex:
        return
    console.print(latency_table(result.metrics))
    if "prediction_quality" in ex and len(ex["prediction_quality"]):
        console.print(quality_table(ex["prediction_quality"], result.split or "replay"))
    if "cmm_weights_by_family" in ex and len(ex["cmm_weights_by_family"]):
        console.print(weights_table(ex["cmm_weights_by_family"]))
    console.print(students_table(ex["cmm_students"], ex.get("prediction_quality")))
    if "probe" in ex and len(ex["probe"]):
        console.print(probe_table(ex["probe"]))
        si = result.metrics.get("probe_specialisation_index")
        if not is_missing(si):
            console.print(f"probe specialisation index (mean JS divergence between task profiles): {si:.3f}")


__all__ = ["QUIET_TABLES", "cmm_bt_report_sections", "cmm_bt_study_notes", "probe_bands"]
