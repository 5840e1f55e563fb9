"""Side-by-side comparison of several runs (``cmm-bt compare``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from cmm_bt.formatting import KEY_METRICS, MetricRow, fmt_value, is_missing

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult


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
        label = row.label + {"higher": " ↑", "lower": " ↓", "none": ""}[row.better]
        table.add_row(label, *cells)
    return table


def render_comparison(results: list["RunResult"], console: "Console") -> None:
    """Print the side-by-side table of key metrics (best per row highlighted) to ``console``."""
    if not results:
        console.print("nothing to compare")
        return
    console.print(comparison_table(results))
