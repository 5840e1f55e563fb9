"""A self-contained HTML report of a run (reporter ``html``): ``report.html`` in the run folder.

Tables (header, key metrics with units, PnL attribution, fitted parameters, episodes, the plugins'
extra tables) and the charts of :mod:`cmm_bt_plugins.report.plots` embedded as base64 PNGs, so the
file opens offline and can be mailed as it is.  Rendered with jinja2 (autoescaped).
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from cmm_bt.components import Params, Reporter
from cmm_bt.formatting import KEY_METRICS, fmt_value

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult

REPORT_FILE = "report.html"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
 table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
 td, th { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
 td:first-child, th:first-child { text-align: left; }
 .pos { color: #1a7f37; } .neg { color: #c62828; } .caption { color: #666; font-size: .85em; max-width: 60em; }
 img { max-width: 100%; }
</style></head><body>
<h1>{{ title }}</h1>
<table>{% for k, v in header %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
{% for section in sections %}
<h2>{{ section.title }}</h2>
{% if section.rows %}<table>
 {% if section.columns %}<tr>{% for c in section.columns %}<th>{{ c }}</th>{% endfor %}</tr>{% endif %}
 {% for row in section.rows %}<tr>{% for cell, cls in row %}<td class="{{ cls }}">{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
{% if section.image %}<img alt="{{ section.title }}" src="data:image/png;base64,{{ section.image }}">{% endif %}
{% if section.caption %}<p class="caption">{{ section.caption }}</p>{% endif %}
{% endfor %}
</body></html>
"""


class HtmlReport(Reporter):
    """Writes ``report.html``: tables and charts of the run, self-contained."""

    name: ClassVar[str] = "html"

    class Config(Params):
        max_rows: int = Field(50, ge=1, description="Most rows shown of the episodes and of each extra table.")
        window_s: float = Field(600.0, gt=0, description="Length of the quotes chart window, seconds.")
        episode: int | None = Field(None, description="Episode of the quotes chart; default: the first.")
        width_in: float = Field(11.0, gt=0, description="Chart width, inches.")
        height_in: float = Field(4.0, gt=0, description="Chart height, inches.")
        dpi: int = Field(90, gt=0, description="Chart resolution.")

    def write_files(self, result: "RunResult", folder: Path) -> None:
        path = Path(folder) / REPORT_FILE
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(render_run(result, self.config), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def report(self, result: "RunResult", console: "Console") -> None:
        if result.run_dir is None:
            console.print("[dim]html: no run folder; report.html skipped[/dim]")
            return
        path = Path(result.run_dir) / REPORT_FILE
        if not path.is_file():
            self.write_files(result, Path(result.run_dir))
        console.print(f"html: {path}")


# --------------------------------------------------------------------------------- rendering
def png_base64(fig: Any, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cls(v: Any) -> str:
    return "" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v == 0 else ("pos" if v > 0 else "neg")


def _frame_rows(df, max_rows: int) -> tuple[list[str], list[list[tuple[str, str]]]]:
    def cell(v: Any) -> tuple[str, str]:
        if isinstance(v, float):
            return ("—" if not math.isfinite(v) else f"{v:,.4g}", _cls(v))
        return (str(v), "")

    return [str(c) for c in df.columns], [[cell(v) for v in row] for row in df.head(max_rows).itertuples(index=False)]


def render_run(result: "RunResult", cfg: Any) -> str:
    """The HTML page of one run."""
    import jinja2

    from cmm_bt_plugins.report import plots

    out, m = result.output, result.metrics
    cur = out.instrument.currency
    inst = out.instrument
    header = [("Strategy", result.strategy_name), ("Dataset", result.dataset_name), ("Split", result.split or "—"),
              ("Instrument", inst.describe()),
              ("Fees", result.fee_model or "not recorded"), ("Episodes", str(len(out.episodes)))]
    key = [[(row.label, ""), (fmt_value(m.get(row.key), row.kind, cur), _cls(m.get(row.key)) if row.signed else "")]
           for row in KEY_METRICS if row.key in m]
    sections = [dict(title="Key metrics", columns=None, rows=key, image=None,
                     caption=f"Money in {cur}; positions in the instrument's units; markouts in ticks per unit (+ = good for us); "
                             "PnL = spread capture + inventory moves + taker fills + fees (docs/metrics.md); — = not defined.")]
    fitted = [[(k.removeprefix("fitted_"), ""), (f"{v:.6g}", "")] for k, v in m.items() if k.startswith("fitted_")]
    if fitted:
        sections.append(dict(title="Fitted on the training split", columns=None, rows=fitted, image=None, caption=None))
    if out.n_steps:
        sections.append(dict(title="Equity and drawdown", columns=None, rows=None, image=png_base64(plots.equity_figure(result, cfg), cfg.dpi),
                             caption="Episodes chained in time order (dotted lines: episode starts)."))
        sections.append(dict(title="Inventory", columns=None, rows=None, image=png_base64(plots.inventory_figure(result, cfg), cfg.dpi), caption=None))
        sections.append(dict(title="Quotes", columns=None, rows=None, image=png_base64(plots.quotes_figure(result, cfg), cfg.dpi),
                             caption="Grey: the market's best bid–ask as the agent saw it (after feed latency)."))
    if len(out.fills):
        sections.append(dict(title="Markouts", columns=None, rows=None, image=png_base64(plots.markout_figure(result, cfg), cfg.dpi), caption=None))
    if len(out.episodes):
        cols, rows = _frame_rows(out.episodes.drop(columns=[c for c in ("start_ns", "end_ns") if c in out.episodes]), cfg.max_rows)
        sections.append(dict(title="Episodes", columns=cols, rows=rows, image=None,
                             caption=f"PnL and fees in {cur}." + (f" First {cfg.max_rows} of {len(out.episodes)}." if len(out.episodes) > cfg.max_rows else "")))
    for name, df in result.extra.items():
        cols, rows = _frame_rows(df, cfg.max_rows)
        sections.append(dict(title=name, columns=cols, rows=rows, image=None,
                             caption=f"{name}.parquet in the run folder" + (f"; first {cfg.max_rows} of {len(df)} rows" if len(df) > cfg.max_rows else "")))
    env = jinja2.Environment(autoescape=True)
    return env.from_string(PAGE).render(title=f"cmm-bt run: {result.run_name}", header=header, sections=sections)
