"""Side-by-side comparison of several runs (``cmm-bt compare``), and the study table over datasets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table
from rich.text import Text

from cmm_bt.formatting import KEY_METRICS, MetricRow, fmt_value, is_missing

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult

#: Study table columns (key, short label): these key metrics, the columns plugins add
#: (``cmm_bt_study_columns``, e.g. prediction errors), then the decision latency.
STUDY_KEYS = (("epnl", "EPnL"), ("map", "MAP"), ("pnl_map", "PnLMAP"), ("sharpe", "Sharpe"), ("fills", "Fills"))
STUDY_LATENCY = ("decision_latency_us_p50", "Latency p50 µs")


def _short(key: str, label: str) -> MetricRow:
    """The key metric ``key`` under a shorter label (study table headers)."""
    row = next(r for r in KEY_METRICS if r.key == key)
    return MetricRow(key, label, row.kind, row.better, row.signed)


def _header(row: MetricRow) -> str:
    """The row's label with an arrow for the better direction."""
    return row.label + {"higher": " ↑", "lower": " ↓", "none": ""}[row.better]


def column_names(results: list["RunResult"]) -> list[str]:
    """One header per run: the strategy name, or ``strategy (run name)`` where strategies repeat."""
    strategies = [r.strategy_name for r in results]
    return [r.strategy_name if strategies.count(r.strategy_name) == 1 else f"{r.strategy_name} ({r.run_name})" for r in results]


def best_index(values: list[object], row: MetricRow) -> set[int]:
    """Indices of the best value(s) of a row (empty when the row has no direction or < 2 values)."""
    if row.better == "none":
        return set()
    finite = [(i, float(v)) for i, v in enumerate(values) if not is_missing(v)]  # type: ignore[arg-type]
    if len(finite) < 2:
        return set()
    pick = max if row.better == "higher" else min
    best = pick(v for _, v in finite)
    return {i for i, v in finite if math.isclose(v, best, rel_tol=1e-12, abs_tol=1e-12)}


def comparison_table(results: list["RunResult"], rows: tuple[MetricRow, ...] = KEY_METRICS) -> Table:
    """A rich table: one row per metric, one column per run, the best value in bold green."""
    table = Table(title="Comparison", title_justify="left")
    table.add_column("Metric")
    for name in column_names(results):
        table.add_column(name, justify="right")
    currencies = {r.output.instrument.currency for r in results}
    cur = currencies.pop() if len(currencies) == 1 else ""
    for row in rows:
        values = [r.metrics.get(row.key) for r in results]
        if all(v is None for v in values):
            continue
        best = best_index(values, row)
        cells = [Text(fmt_value(v, row.kind, cur), style="bold green" if i in best else "") for i, v in enumerate(values)]
        table.add_row(_header(row), *cells)
    return table


def render_comparison(results: list["RunResult"], console: "Console") -> None:
    """Print the side-by-side table of key metrics (best per row highlighted) to ``console``."""
    if not results:
        console.print("nothing to compare")
        return
    console.print(comparison_table(results))


def study_columns(extra: "list[MetricRow] | tuple[MetricRow, ...]" = ()) -> list[MetricRow]:
    """The study table's metric columns: key metrics, then ``extra`` (from plugins), then the latency."""
    return [*(_short(*k) for k in STUDY_KEYS), *extra, _short(*STUDY_LATENCY)]


def _study_cells(results: list["RunResult"], columns: list[MetricRow]) -> list[list[tuple[str, bool]]]:
    """Formatted ``(text, best within its dataset)`` cells, one list per run."""
    cells: list[list[tuple[str, bool]]] = [[] for _ in results]
    for col in columns:
        best: set[int] = set()
        for ds in dict.fromkeys(r.dataset_name for r in results):
            idx = [i for i, r in enumerate(results) if r.dataset_name == ds]
            best |= {idx[j] for j in best_index([results[i].metrics.get(col.key) for i in idx], col)}
        for i, r in enumerate(results):
            value = fmt_value(r.metrics.get(col.key), col.kind, r.output.instrument.currency)
            cells[i].append((value, i in best))
    return cells


def study_table(results: list["RunResult"], extra: "list[MetricRow] | tuple[MetricRow, ...]" = ()) -> Table:
    """One row per (dataset, strategy), one column per study metric; the best per dataset in bold green.
    Money is in each dataset's own currency."""
    columns = study_columns(extra)
    table = Table(title="Study (test split unless a strategy says otherwise)", title_justify="left")
    table.add_column("Dataset")
    table.add_column("Strategy")
    for col in columns:
        table.add_column(_header(col), justify="right")
    previous = None
    for r, row in zip(results, _study_cells(results, columns)):
        table.add_row("" if r.dataset_name == previous else r.dataset_name, r.strategy_name,
                      *(Text(t, style="bold green" if b else "") for t, b in row))
        previous = r.dataset_name
    return table


def study_markdown(results: list["RunResult"], extra: "list[MetricRow] | tuple[MetricRow, ...]" = ()) -> str:
    """The study table as Markdown (best per dataset in bold), with each row's run folder."""
    columns = study_columns(extra)
    head = ["Dataset", "Strategy", *(c.label for c in columns), "Run folder"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, row in zip(results, _study_cells(results, columns)):
        cells = [f"**{t}**" if b else t for t, b in row]
        lines.append("| " + " | ".join([r.dataset_name, r.strategy_name, *cells, str(r.run_dir or "—")]) + " |")
    return "\n".join(lines) + "\n"


def uncertainty_table(results: list["RunResult"], *, level: float = 0.95) -> Table:
    """Per run: split, episodes and EPnL with its block-bootstrap interval (:func:`cmm_bt.stats.mean_interval`)."""
    from cmm_bt.metrics import episode_pnls
    from cmm_bt.stats import mean_interval

    table = Table(title=f"EPnL with {level:.0%} confidence interval (block bootstrap over episodes)", title_justify="left")
    for col in ("Run", "Split", "Episodes", "EPnL", "CI low", "CI high"):
        table.add_column(col, justify="left" if col in ("Run", "Split") else "right")
    for name, r in zip(column_names(results), results):
        iv = mean_interval(episode_pnls(r.output), level=level)
        cur = r.output.instrument.currency
        table.add_row(name, r.split or "—", str(iv.n), *(fmt_value(v, "money", cur) for v in (iv.mean, iv.low, iv.high)))
    table.caption = "n/a: fewer than 3 episodes" if any(len(r.output.episodes) < 3 for r in results) else None
    return table


def paired_table(results: list["RunResult"], a: str, b: str, *, level: float = 0.95) -> Table:
    """``a − b`` on the episodes both played (matched by start time): mean difference of episode
    PnL, its block-bootstrap interval and p-value (:func:`cmm_bt.stats.paired_difference`)."""
    from cmm_bt.errors import CmmBtError
    from cmm_bt.stats import episode_frame, paired_difference

    by_name = {r.strategy_name: r for r in results}
    for n in (a, b):
        if n not in by_name:
            raise CmmBtError(f"--paired: no run of strategy {n!r} (runs: {', '.join(by_name)})", key="--paired")
    table = Table(title=f"Paired: {a} − {b}, episode PnL ({level:.0%} CI, block bootstrap)", title_justify="left")
    for col in ("Dataset", "Episodes", "Mean difference", "CI low", "CI high", "p-value"):
        table.add_column(col, justify="left" if col == "Dataset" else "right")
    for ds in dict.fromkeys(r.dataset_name for r in results):
        runs = {r.strategy_name: r for r in results if r.dataset_name == ds}
        if a not in runs or b not in runs:
            continue
        frame = episode_frame([runs[a], runs[b]], [a, b])
        d = paired_difference(frame[a].to_numpy(), frame[b].to_numpy(), level=level)
        cur = runs[a].output.instrument.currency
        table.add_row(ds, str(d.n), *(fmt_value(v, "money", cur) for v in (d.diff_mean, d.low, d.high)),
                      "n/a" if np.isnan(d.p_value) else f"{d.p_value:.3f}")
    return table
