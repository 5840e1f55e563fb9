"""What a study measured: per dataset × strategy metrics with confidence intervals, paired tests
against the reference, the model confidence set; written as JSON, Markdown and HTML.

Every statistic is computed from the runs' episodes (``episodes.parquet``), pooled over seeds:

* ``epnl`` (mean episode PnL), ``sharpe`` (mean / std of episode PnL), ``map`` (mean of the
  episodes' mean |position|), ``pnl_map`` (``epnl / map``) and ``fills`` (fills per episode);
* their 95 % interval is a two-level bootstrap: seeds resampled with replacement, then the
  episodes of each drawn seed (``reps`` times); with one seed it is the bootstrap over episodes.
  Seeds whose runs are identical (a deterministic strategy) count once: repeating the same
  episodes would make the interval look tighter than the data allow (``n_distinct_seeds``);
* ``seed_sd`` is the spread of the per-seed values (learned models vary with their seed);
* paired differences ``a − reference`` of episode PnL on identical test episodes (same start, each
  strategy's PnL averaged over its seeds: :func:`episode_matrix`) use :func:`cmm_bt.stats.paired_difference` (block bootstrap, p-value); the model
  confidence set is :func:`cmm_bt.stats.model_confidence_set` on the episode losses ``−PnL``;
* :data:`RUN_METRICS` (energy and CPU time per decision, decision latency) are run metrics, the
  mean over seeds (no interval);
* notes: what plugins say about each run (``cmm_bt_study_notes``, e.g. what a probe found) and how
  energy was measured (the runs' :data:`cmm_bt.energy.ENERGY_TABLE`), per dataset, a distinct value once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from cmm_bt.stats import MIN_EPISODES, model_confidence_set, paired_difference

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.study.runner import StudyResult

METRICS: dict[str, Callable[[pd.DataFrame], float]] = {
    "epnl": lambda e: float(e["pnl"].mean()),
    "pnl_map": lambda e: float(e["pnl"].mean() / e["mean_abs_position"].mean()) if e["mean_abs_position"].mean() > 0 else math.nan,
    "sharpe": lambda e: float(e["pnl"].mean() / e["pnl"].std(ddof=1)) if len(e) > 1 and e["pnl"].std(ddof=1) > 0 else math.nan,
    "map": lambda e: float(e["mean_abs_position"].mean()),
    "fills": lambda e: float(e["fills"].mean()),
}
"""Study metrics (names as in ``metrics.json``; ``fills`` per episode) as functions of an episode table."""

REPS = 1000

#: Run metrics (``metrics.json``) the study reports per dataset × strategy as a mean over seeds.
RUN_METRICS = ("energy_per_decision_j", "cpu_us_per_decision", "decision_latency_us_p50")


def hierarchical_interval(groups: list[pd.DataFrame], stat: Callable[[pd.DataFrame], float], *, reps: int = REPS,
                          seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(value, low, high)`` of ``stat`` on the pooled episode tables ``groups`` (one per seed),
    the interval from resampling seeds, then each drawn seed's episodes."""
    pooled = pd.concat(groups, ignore_index=True)
    value = stat(pooled)
    if len(pooled) < MIN_EPISODES:
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        pick = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        sample = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in pick if len(g)], ignore_index=True)
        draws.append(stat(sample))
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < reps // 2:
        return value, math.nan, math.nan
    a = (1.0 - level) / 2.0
    return value, float(np.quantile(d, a)), float(np.quantile(d, 1.0 - a))


def distinct(groups: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The seeds' episode tables without repeats (same episodes, same PnL)."""
    seen, out = set(), []
    for g in groups:
        key = (tuple(g["start_ns"]), tuple(g["pnl"]))
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


def _episodes(run) -> pd.DataFrame:
    e = run.result.output.episodes.copy()
    e["seed"] = run.seed
    return e


def study_rows(result: "StudyResult") -> list[dict]:
    """``{dataset, strategy, metric, mean, ci_low, ci_high, seed_sd, n_episodes, n_seeds}`` rows."""
    rows = []
    for ds in result.study.datasets:
        for name in result.study.strategies:
            runs = [r for r in result.runs if r.dataset == ds and r.strategy == name]
            groups = distinct([_episodes(r) for r in runs])
            if not groups:
                continue
            for metric, stat in METRICS.items():
                value, lo, hi = hierarchical_interval(groups, stat)
                per_seed = np.array([stat(g) for g in groups if len(g)], dtype=float)
                sd = float(np.nanstd(per_seed, ddof=1)) if np.isfinite(per_seed).sum() > 1 else math.nan
                rows.append({"dataset": ds, "strategy": name, "metric": metric, "mean": value, "ci_low": lo, "ci_high": hi,
                             "seed_sd": sd, "n_episodes": int(sum(len(g) for g in groups)), "n_seeds": len(runs),
                             "n_distinct_seeds": len(groups)})
    return rows


def run_metric_rows(result: "StudyResult") -> list[dict]:
    """``{dataset, strategy, metric, mean, seed_sd, n_seeds}`` of the :data:`RUN_METRICS` the runs
    report (e.g. energy per decision), the mean over seeds; no interval (one value per run)."""
    rows = []
    for ds in result.study.datasets:
        for name in result.study.strategies:
            runs = [r for r in result.runs if r.dataset == ds and r.strategy == name]
            for metric in RUN_METRICS:
                v = np.array([float(r.result.metrics[metric]) for r in runs if r.result.metrics.get(metric) is not None], dtype=float)
                v = v[np.isfinite(v)]
                if v.size:
                    rows.append({"dataset": ds, "strategy": name, "metric": metric, "mean": float(v.mean()), "ci_low": math.nan,
                                 "ci_high": math.nan, "seed_sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                                 "n_episodes": 0, "n_seeds": int(v.size), "n_distinct_seeds": int(v.size)})
    return rows


def note_rows(result: "StudyResult") -> list[dict]:
    """What the runs' plugins say about them (``cmm_bt_study_notes``) and how energy was measured,
    per dataset: ``{dataset, label, value, runs}``, one row per distinct value (``runs``: the
    strategies, with their seeds where not every seed says the same)."""
    from cmm_bt.energy import ENERGY_TABLE

    facts: dict[tuple[str, str, str], dict] = {}
    for r in result.runs:
        notes = dict(result.notes.get((r.dataset, r.strategy, r.seed), {}))
        table = r.result.extra.get(ENERGY_TABLE)
        if table is not None:
            for e in table.to_dict("records"):
                notes["energy per decision measured by"] = e["method"]  # the models and paths are in the runs' tables
        for label, value in notes.items():
            key = (r.dataset, label, json.dumps(_plain(value), sort_keys=True))
            facts.setdefault(key, {"dataset": r.dataset, "label": label, "value": _plain(value), "seeds": {}})
            facts[key]["seeds"].setdefault(r.strategy, []).append(r.seed)
    rows = []
    for f in facts.values():
        runs = [name if sorted(seeds) == sorted(result.study.seeds) else f"{name} (seeds {', '.join(map(str, sorted(seeds)))})"
                for name, seeds in f.pop("seeds").items()]
        rows.append({**f, "runs": runs})
    order = {d: i for i, d in enumerate(result.study.datasets)}
    return sorted(rows, key=lambda x: (order.get(x["dataset"], 0), x["label"]))


def note_text(v) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k}: {note_text(x)}" for k, x in v.items())
    if isinstance(v, float):
        return _fmt(v)
    return str(v)


def episode_matrix(result: "StudyResult", dataset: str, names: list[str] | None = None) -> pd.DataFrame:
    """Episode PnL of the strategies ``names`` (columns; default all), averaged over each strategy's seeds,
    one row per test episode (index: start) that all of them played, in time order.

    The market's episodes are the sampling unit of the paired tests and the model confidence set: a
    deterministic strategy replays the same episodes under every seed, and counting those rows once per
    seed would narrow the intervals with copies; the seeds' spread is reported in the study table."""
    cols = {}
    for name in names or list(result.study.strategies):
        e = pd.concat([_episodes(r) for r in result.runs if r.dataset == dataset and r.strategy == name] or [pd.DataFrame()])
        if len(e):
            cols[name] = e.groupby("start_ns")["pnl"].mean()
    return pd.DataFrame(cols).dropna().sort_index()


def paired_rows(result: "StudyResult") -> tuple[list[dict], dict[str, dict[str, float]]]:
    """Rows ``{dataset, a, b, metric, diff_mean, ci_low, ci_high, p_value, n_episodes}`` of every
    strategy against the reference, and the model confidence set's p-values per dataset."""
    ref = result.study.reference
    rows, mcs = [], {}
    for ds in result.study.datasets:
        m = episode_matrix(result, ds)
        if ref not in m:
            continue
        for name in m.columns:
            if name == ref:
                continue
            pair = episode_matrix(result, ds, [name, ref])
            d = paired_difference(pair[name].to_numpy(), pair[ref].to_numpy())
            rows.append({"dataset": ds, "a": name, "b": ref, "metric": "epnl", "diff_mean": d.diff_mean, "ci_low": d.low,
                         "ci_high": d.high, "p_value": d.p_value, "n_episodes": d.n})
        if m.shape[1] >= 2:
            mcs[ds] = {k: float(v) for k, v in model_confidence_set(-m).items()}
    return rows, mcs


def _plain(obj):
    """``obj`` with non-finite floats as None (JSON ``null``)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_plain(obj), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.4g}"


def study_markdown(result: "StudyResult", rows: list[dict], paired: list[dict], mcs: dict, notes: list[dict] | None = None) -> str:
    """The study table: one block per dataset, a row per strategy, each metric with its interval."""
    st = result.study
    lines = [f"# Study: {st.description or 'cmm-bt study'}", "",
             f"Test split, seeds {st.seeds}; tuning: {st.tuning.trials} trials per strategy and dataset ({st.tuning.search}, "
             f"{st.tuning.split} split, metric {st.tuning.metric}); reference: {st.reference}. Intervals: 95 %, bootstrap over "
             "seeds × episodes; paired: block bootstrap on identical episodes, each strategy's seeds averaged; MCS: model confidence set p-value (in the set at 5 % if > 0.05).", ""]
    if st.protocol:
        lines += ["Protocol: " + ", ".join(f"{k} = {v}" for k, v in st.protocol.items()), ""]
    if st.overrides:
        lines += ["Study overrides (to every strategy with the section): " + ", ".join(f"`{o}`" for o in st.overrides), ""]
    for name, s in st.strategies.items():
        if s.protocol:
            lines += [f"- **{name}** differs from the protocol: {', '.join(f'{k} = {v}' for k, v in s.protocol.items())} — {s.why}"]
    lines.append("")
    by = {(r["dataset"], r["strategy"], r["metric"]): r for r in rows}
    pair = {(p["dataset"], p["a"]): p for p in paired}
    for ds in st.datasets:
        lines += [f"## {ds}", "", "| Strategy | EPnL [95 % CI] | PnLMAP [CI] | Sharpe [CI] | MAP | Fills / episode | Episodes (seeds) | EPnL − "
                  f"{st.reference} [CI], p | MCS p | Energy / decision (J), CPU µs | Tuned |", "|" + "---|" * 11]
        for name in st.strategies:
            if (ds, name, "epnl") not in by:
                continue

            def cell(metric: str, ci: bool = True) -> str:
                r = by[ds, name, metric]
                return _fmt(r["mean"]) + (f" [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if ci else "")

            p = pair.get((ds, name))
            vs = "reference" if name == st.reference else ("n/a" if p is None else f"{_fmt(p['diff_mean'])} [{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}], p {_fmt(p['p_value'])}")
            tuned = result.tuned.get((ds, name))
            tuned_s = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in tuned["params"].items()) if tuned else "—"
            r0 = by[ds, name, "epnl"]
            en, cpu = by.get((ds, name, "energy_per_decision_j")), by.get((ds, name, "cpu_us_per_decision"))
            energy = "—" if en is None else f"{en['mean']:.3g}" + ("" if cpu is None else f", {cpu['mean']:.3g} µs")
            lines.append(f"| {name} | {cell('epnl')} | {cell('pnl_map')} | {cell('sharpe')} | {cell('map', False)} | {cell('fills', False)} | "
                         f"{r0['n_episodes']} ({r0['n_distinct_seeds']} distinct of {r0['n_seeds']} seeds) | {vs} | {_fmt(mcs.get(ds, {}).get(name, math.nan))} | "
                         f"{energy} | {tuned_s} |")
        lines.append("")
        mine = [n for n in notes or [] if n["dataset"] == ds]
        if mine:
            lines += [f"What the runs found on {ds}:", ""]
            lines += [f"- {n['label']}: {note_text(n['value'])} — {', '.join(n['runs'])}" for n in mine]
            lines.append("")
    return "\n".join(lines) + "\n"


def write_outputs(result: "StudyResult", console: "Console | None" = None) -> None:
    """``study.json``, ``paired.json``, ``mcs.json``, ``notes.json``, ``study.md`` and ``report.html`` in the study folder."""
    from cmm_bt.study.html import study_html

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    rows = study_rows(result) + run_metric_rows(result)
    paired, mcs = paired_rows(result)
    notes = note_rows(result)
    _json(out / "study.json", rows)
    _json(out / "paired.json", paired)
    _json(out / "mcs.json", mcs)
    _json(out / "notes.json", notes)
    md = study_markdown(result, rows, paired, mcs, notes)
    for name, text in (("study.md", md), ("report.html", study_html(result, rows, paired, mcs, notes))):
        tmp = out / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    if console is not None:
        console.print(md)
        console.print(f"[dim]wrote study.json, paired.json, mcs.json, notes.json, study.md, report.html to {out}[/]")
