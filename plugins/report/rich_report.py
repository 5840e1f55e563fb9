"""The terminal report (reporter ``rich``): header, key metrics, episodes, equity sparkline, extras."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cmm_bt.components import Params, Reporter
from cmm_bt.formatting import KEY_METRICS, fmt_money, fmt_value, is_missing, signed_text, sparkline
from cmm_bt.metrics import equity_curve, episode_table

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ns: float) -> str:
    s = max(0, int(round(ns / 1e9)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class RichReport(Reporter):
    """Prints the run to the console with ``rich`` (and nothing else: no files)."""

    name: ClassVar[str] = "rich"

    class Config(Params):
        max_episode_rows: int = Field(12, ge=0, description="Most episodes listed in the per-episode table (the rest are summarised in one line).")
        max_extra_rows: int = Field(30, ge=0, description="Most rows shown of each extra table (e.g. prediction quality).")
        sparkline: bool = Field(True, description="Show the equity sparkline.")

    def report(self, result: "RunResult", console: "Console") -> None:
        out = result.output
        cur = out.instrument.currency
        console.print(self._header(result))
        console.print(self._summary(result, cur))
        if len(out.episodes):
            console.print(self._episodes(result, cur))
        if self.config.sparkline and out.n_steps:
            curve = equity_curve(out)
            width = max(10, console.width - 4)
            line = sparkline(curve, width)
            caption = f"min {fmt_money(float(curve.min()), cur)}   max {fmt_money(float(curve.max()), cur)}   end {fmt_money(float(curve[-1]), cur)}"
            style = "green" if curve[-1] > 0 else "red" if curve[-1] < 0 else ""
            console.print(Panel(Text(line, style=style), title="Equity", subtitle=caption, expand=False))
        for name, df in result.extra.items():
            if name not in result.quiet_tables:
                console.print(self._extra(name, df))

    # ---------------------------------------------------------------------------------- parts
    def _header(self, result: "RunResult") -> Panel:
        out = result.output
        inst = out.instrument
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("Strategy", result.strategy_name)
        grid.add_row("Dataset", result.dataset_name + (f"  (split: {result.split})" if result.split else ""))
        if out.n_steps:
            ts = out.step_column("ts")
            span = f"{_utc(int(ts.min()))} → {_utc(int(ts.max()))} UTC ({_duration(float(ts.max() - ts.min()))})"
        else:
            span = "no decision steps"
        grid.add_row("Span", span)
        grid.add_row("Instrument", inst.describe())
        grid.add_row("Fees", result.fee_model or "not recorded")
        if result.run_dir is not None:
            grid.add_row("Run folder", str(result.run_dir))
        return Panel(grid, title=Text.assemble("cmm-bt run ", (result.run_name, "bold")), expand=False)

    def _summary(self, result: "RunResult", cur: str) -> Table:
        m = result.metrics
        t = Table(title="Summary", title_justify="left")
        t.add_column("Metric")
        t.add_column("Value", justify="right")
        for row in KEY_METRICS:
            if row.key not in m:
                continue
            v = m[row.key]
            s = fmt_value(v, row.kind, cur)
            t.add_row(row.label, signed_text(s, v) if row.signed else Text(s))
        fitted = {k.removeprefix("fitted_"): v for k, v in m.items() if k.startswith("fitted_")}
        if fitted:
            t.add_row("Fitted on train", ", ".join(f"{k} {v:.4g}" for k, v in fitted.items()))
        t.caption = (f"money in {cur}; positions in the instrument's units (MAP, PnLMAP per unit); markouts in ticks "
                     "per unit, + = good for us; PnL = spread capture + inventory + taker + fees; "
                     "— = n/a (e.g. Sharpe of one episode, Sortino without a losing episode)")
        return t

    def _episodes(self, result: "RunResult", cur: str) -> Table:
        eps = episode_table(result.output)
        t = Table(title="Episodes", title_justify="left")
        for col, just in (
            ("#", "right"), ("Start (UTC)", "left"), ("Length", "right"), (f"PnL {cur}", "right"),
            ("Fills", "right"), ("avg |q|", "right"), ("max |q|", "right"), (f"Fees {cur}", "right"),
        ):
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        n = self.config.max_episode_rows
        for r in eps.head(n).itertuples(index=False):
            d = r._asdict()
            start, end = d.get("start_ns"), d.get("end_ns")
            pnl = d.get("pnl", math.nan)
            t.add_row(
                str(d.get("episode", "")),
                _utc(int(start))[5:16] if start is not None and not is_missing(float(start)) else "—",
                _duration(float(end - start)) if start is not None and end is not None else "—",
                signed_text(fmt_money(pnl), pnl),
                fmt_value(d.get("fills"), "int"),
                f"{d.get('mean_abs_position', math.nan):.3g}",
                f"{d.get('max_abs_position', math.nan):.3g}",
                fmt_money(d.get('fees', math.nan)),
            )
        if len(eps) > n:
            rest = eps.iloc[n:]
            pnl = float(rest["pnl"].sum()) if "pnl" in rest else math.nan
            t.add_row(f"+{len(rest)}", "more", "", signed_text(fmt_money(pnl), pnl), "", "", "", "")
        return t

    def _extra(self, name: str, df: pd.DataFrame) -> Table:
        t = Table(title=name.replace("_", " ").capitalize(), title_justify="left")
        for c in df.columns:
            t.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
        for row in df.head(self.config.max_extra_rows).itertuples(index=False):
            t.add_row(*(_cell(v) for v in row))
        if len(df) > self.config.max_extra_rows:
            t.caption = f"{len(df) - self.config.max_extra_rows} more rows in {name}.parquet"
        return t


def _cell(v: object) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return fmt_value(float(v), "float")
    return str(v)
