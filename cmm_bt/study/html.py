"""The study's self-contained ``report.html``: per dataset, each strategy's mean with its interval
(whiskers) and the strategies' equity curves overlaid on the test split; the tables of study.md."""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING

import numpy as np

from cmm_bt.study.analysis import note_text

if TYPE_CHECKING:
    from cmm_bt.study.runner import StudyResult

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}h2{border-bottom:1px solid #ddd;margin-top:1.5em}img{max-width:100%}
.caption{color:#666;font-size:.85em}</style></head><body>
<h1>{{ title }}</h1><p class="caption">{{ intro }}</p>
{% for ds in datasets %}<h2>{{ ds.name }}</h2>
<table><tr>{% for c in ds.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in ds.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
<img alt="{{ ds.name }}: EPnL with 95 % intervals" src="data:image/png;base64,{{ ds.whiskers }}">
<img alt="{{ ds.name }}: equity on the test split" src="data:image/png;base64,{{ ds.equity }}">
{% if ds.notes %}<h3>What the runs found</h3><ul>{% for n in ds.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% endfor %}</body></html>
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.4g}"


def study_html(result: "StudyResult", rows: list[dict], paired: list[dict], mcs: dict, notes: list[dict] | None = None) -> str:
    import jinja2

    st = result.study
    by = {(r["dataset"], r["strategy"], r["metric"]): r for r in rows}
    pair = {(p["dataset"], p["a"]): p for p in paired}
    datasets = []
    for ds in st.datasets:
        names = [n for n in st.strategies if (ds, n, "epnl") in by]
        cur = next((r.result.output.instrument.currency for r in result.runs if r.dataset == ds), "")
        table = []
        for n in names:
            e, s = by[ds, n, "epnl"], by[ds, n, "sharpe"]
            p = pair.get((ds, n))
            table.append([n, f"{_f(e['mean'])} [{_f(e['ci_low'])}, {_f(e['ci_high'])}]", f"{_f(s['mean'])} [{_f(s['ci_low'])}, {_f(s['ci_high'])}]",
                          _f(by[ds, n, "map"]["mean"]), f"{e['n_episodes']} ({e['n_distinct_seeds']} distinct of {e['n_seeds']} seeds)",
                          "reference" if n == st.reference else ("n/a" if p is None else f"{_f(p['diff_mean'])}, p {_f(p['p_value'])}"),
                          _f(mcs.get(ds, {}).get(n, math.nan)),
                          "—" if (ds, n, "energy_per_decision_j") not in by else f"{by[ds, n, 'energy_per_decision_j']['mean']:.3g}"])
        whiskers = _whiskers(by, ds, names, cur)
        fig, ax = _figure(10, 3.6)
        for n in names:
            run = next((r for r in result.runs if r.dataset == ds and r.strategy == n and r.seed == st.seeds[0]), None)
            if run is None or not run.result.output.n_steps:
                continue
            ax.plot(_trading_hours(run.result.output.step_column("ts")), _equity(run.result), lw=0.8, label=n)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlabel("trading time on the test split, hours (episodes chained; pauses over 60 s left out)")
        ax.set_ylabel(f"equity ({cur})")
        ax.set_title(f"seed {st.seeds[0]}")
        ax.legend(fontsize="small")
        found = [f"{n['label']}: {note_text(n['value'])} — {', '.join(n['runs'])}" for n in notes or [] if n["dataset"] == ds]
        datasets.append({"name": ds, "columns": ["Strategy", "EPnL [95 % CI]", "Sharpe [CI]", "MAP", "Episodes (seeds)",
                                                 f"− {st.reference} (paired), p", "MCS p", "Energy / decision (J)"], "rows": table,
                         "whiskers": whiskers, "equity": _png(fig), "notes": found})
    intro = (f"Test split, seeds {st.seeds}; every strategy tuned with {st.tuning.trials} trials ({st.tuning.search}) on the "
             f"{st.tuning.split} split by {st.tuning.metric}; intervals by bootstrap over seeds × episodes; reference {st.reference}.")
    return jinja2.Environment(autoescape=True).from_string(PAGE).render(title=f"Study: {st.description or 'cmm-bt study'}", intro=intro, datasets=datasets)


def _whiskers(by: dict, ds: str, names: list[str], cur: str) -> str:
    """Each strategy's mean EPnL and Sharpe with their 95 % intervals as whiskers (two panels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.6 + 0.45 * len(names)), layout="constrained")
    FigureCanvasAgg(fig)
    y = np.arange(len(names))
    for i, (metric, label) in enumerate((("epnl", f"EPnL per episode ({cur})"), ("sharpe", "Sharpe (per episode)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        mean = np.array([by[ds, n, metric]["mean"] for n in names], dtype=float)
        lo = np.array([by[ds, n, metric]["ci_low"] for n in names], dtype=float)
        hi = np.array([by[ds, n, metric]["ci_high"] for n in names], dtype=float)
        err = np.vstack([np.nan_to_num(mean - lo).clip(0), np.nan_to_num(hi - mean).clip(0)])
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=4)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_yticks(y, names if i == 0 else [""] * len(names))
        ax.invert_yaxis()
        ax.set_xlabel(f"{label}, mean and 95 % interval")
    return _png(fig)


def _trading_hours(ts: np.ndarray) -> np.ndarray:
    """Elapsed time of the decision times ``ts`` (ns), pauses longer than 60 s counted as 60 s, hours."""
    if ts.size < 2:
        return np.zeros(ts.size)
    return np.concatenate([[0.0], np.cumsum(np.minimum(np.diff(ts) / 1e9, 60.0))]) / 3600.0


def _equity(result) -> np.ndarray:
    from cmm_bt.metrics import equity_curve

    return equity_curve(result.output)[1:]
