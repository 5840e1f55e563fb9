"""PNG charts of a run (reporter ``plots``): equity, inventory and a quotes window.

matplotlib is imported lazily inside :meth:`PlotReport.report` and used through its object API
with the Agg canvas (no pyplot, no global backend switch).  ``cmm-bt run`` has them written into the
run folder while it is still the temporary one (:meth:`PlotReport.write_files`), so a complete run
folder always has them; each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cmm_bt.components import Params, Reporter
from cmm_bt.metrics import equity_curve

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.results import RunResult

PLOT_FILES: tuple[str, ...] = ("equity.png", "inventory.png", "quotes.png")


class PlotReport(Reporter):
    """Writes ``equity.png``, ``inventory.png`` and ``quotes.png`` into the run folder."""

    name: ClassVar[str] = "plots"

    class Config(Params):
        window_s: float = Field(600.0, gt=0, description="Length of the quotes chart window, seconds from the start of the chosen episode.")
        episode: int | None = Field(None, description="Episode id shown in the quotes chart; default: the first episode.")
        width_in: float = Field(11.0, gt=0, description="Figure width, inches.")
        height_in: float = Field(4.0, gt=0, description="Figure height, inches.")
        dpi: int = Field(100, gt=0, description="Resolution of the PNG files.")

    def write_files(self, result: "RunResult", folder: Path) -> None:
        """The PNGs, into the run folder before it is moved into place (``cmm-bt run``)."""
        if result.output.n_steps:
            self._write_all(result, Path(folder))

    def report(self, result: "RunResult", console: "Console") -> None:
        if result.run_dir is None:
            console.print("[dim]plots: no run folder (run_dir is None); charts skipped[/dim]")
            return
        if result.output.n_steps == 0:
            console.print("[dim]plots: no decision steps; charts skipped[/dim]")
            return
        run_dir = Path(result.run_dir)
        if all((run_dir / name).is_file() for name in PLOT_FILES):  # written with the run folder
            written = [run_dir / name for name in PLOT_FILES]
        else:  # a result read back or built by hand: write them now
            run_dir.mkdir(parents=True, exist_ok=True)
            written = self._write_all(result, run_dir)
        console.print(f"plots: wrote {', '.join(p.name for p in written)} to {run_dir}")

    def _write_all(self, result: "RunResult", folder: Path) -> list[Path]:
        return [
            self._equity(result, folder / "equity.png"),
            self._inventory(result, folder / "inventory.png"),
            self._quotes(result, folder / "quotes.png"),
        ]

    # --------------------------------------------------------------------------------- charts
    def _figure(self) -> tuple[Any, Any]:
        return new_figure(self.config.width_in, self.config.height_in, self.config.dpi)

    def _save(self, fig: Any, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            fig.savefig(tmp, format="png", dpi=self.config.dpi)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def _equity(self, result: "RunResult", path: Path) -> Path:
        return self._save(equity_figure(result, self.config), path)

    def _inventory(self, result: "RunResult", path: Path) -> Path:
        return self._save(inventory_figure(result, self.config), path)

    def _quotes(self, result: "RunResult", path: Path) -> Path:
        return self._save(quotes_figure(result, self.config), path)


# ------------------------------------------------------------------------------- figures
def new_figure(width_in: float, height_in: float, dpi: int, rows: int = 1, ratios: tuple[float, ...] | None = None) -> tuple[Any, Any]:
    """A matplotlib Figure on the Agg canvas (no pyplot) and its axes (one, or ``rows`` sharing x)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    if rows == 1:
        return fig, fig.add_subplot(1, 1, 1)
    return fig, fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": list(ratios or [1] * rows)})


#: A pause between decision steps longer than this many median intervals (a session break, a
#: weekend) is drawn as this many intervals, so trading time fills the x-axis.
GAP_CAP_STEPS = 50


def trading_time(ts: np.ndarray) -> np.ndarray:
    """x positions (seconds) of decision times ``ts`` (ns) with long pauses shortened to
    :data:`GAP_CAP_STEPS` median intervals; labelled with the real clock times by :func:`_time_axis`."""
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size < 2:
        return np.zeros(ts.size)
    dt = np.diff(ts).astype(float) / 1e9
    cap = GAP_CAP_STEPS * max(float(np.median(dt)), 1e-9)
    return np.concatenate([[0.0], np.cumsum(np.minimum(dt, cap))])


def _episode_bounds(ax: Any, x: np.ndarray, episode: np.ndarray) -> None:
    """Dotted vertical lines where a new episode starts."""
    for i in np.flatnonzero(episode[1:] != episode[:-1]) + 1:
        ax.axvline(x[i], color="grey", lw=0.6, ls=":")


def _time_axis(ax: Any, x: np.ndarray, ts: np.ndarray) -> None:
    """Label trading-time positions ``x`` with the clock time (UTC) of the nearest step; mark the
    shortened pauses."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ts = np.asarray(ts, dtype=np.int64)
    if ts.size == 0:
        return
    span_days = (ts[-1] - ts[0]) / 86_400e9
    fmt = "%m-%d %H:%M" if span_days >= 1 else "%H:%M:%S"

    def label(v: float, _pos: int) -> str:
        i = int(np.clip(np.searchsorted(x, v), 0, ts.size - 1))
        return np.datetime64(int(ts[i]), "ns").astype("datetime64[s]").item().strftime(fmt)

    ax.xaxis.set_major_locator(MaxNLocator(8))
    ax.xaxis.set_major_formatter(FuncFormatter(label))
    if ts.size > 1:
        dt = np.diff(ts)
        for i in np.flatnonzero(dt > GAP_CAP_STEPS * np.median(dt)):
            ax.axvline(x[i + 1], color="tab:orange", lw=0.8, alpha=0.6)
    ax.set_xlabel("time (UTC; orange: a pause in trading, shortened)")


def equity_figure(result: "RunResult", cfg: Any) -> Any:
    """Equity (episodes chained) over time, with its drawdown below."""
    out = result.output
    curve = equity_curve(out)[1:]  # one point per step (drop the leading 0)
    ts = out.step_column("ts")
    t = trading_time(ts)
    cur = out.instrument.currency
    fig, (ax, dd) = new_figure(cfg.width_in, cfg.height_in * 1.4, cfg.dpi, rows=2, ratios=(3, 1))
    ax.plot(t, curve, lw=0.9, color="tab:blue")
    ax.axhline(0, color="black", lw=0.5)
    _episode_bounds(ax, t, out.step_column("episode"))
    ax.set_title(f"{result.strategy_name} on {result.dataset_name} ({result.split or 'replay'} split): equity, episodes chained")
    ax.set_ylabel(f"equity ({cur})")
    draw = curve - np.maximum.accumulate(np.concatenate([[0.0], curve]))[1:]
    dd.fill_between(t, draw, 0, color="tab:red", alpha=0.4, lw=0)
    dd.set_ylabel(f"drawdown ({cur})")
    _time_axis(dd, t, ts)
    return fig


def inventory_figure(result: "RunResult", cfg: Any) -> Any:
    """Position over time."""
    out = result.output
    pos = out.step_column("position")
    ts = out.step_column("ts")
    t = trading_time(ts)
    fig, ax = new_figure(cfg.width_in, cfg.height_in, cfg.dpi)
    ax.step(t, pos, where="post", lw=0.8, color="tab:purple")
    ax.axhline(0, color="black", lw=0.5)
    _episode_bounds(ax, t, out.step_column("episode"))
    ax.set_title(f"{result.strategy_name} on {result.dataset_name}: inventory")
    ax.set_ylabel(f"position ({out.instrument.symbol} units)")
    _time_axis(ax, t, ts)
    return fig


def quotes_figure(result: "RunResult", cfg: Any) -> Any:
    """Our quotes and fills over the market's best bid / ask (the local view), one episode window."""
    out = result.output
    fills = out.fills
    ep = cfg.episode if cfg.episode is not None else int(next(out.step_chunks(["episode"]))["episode"].iloc[0])
    # the episode's steps from the chunk that holds it (chunks hold whole episodes)
    s = next((c[c["episode"] == ep] for c in out.step_chunks() if (c["episode"] == ep).any()), pd.DataFrame(columns=["ts"]))
    fig, ax = new_figure(cfg.width_in, cfg.height_in, cfg.dpi)
    tick = out.instrument.tick_size
    if len(s) == 0:
        ax.text(0.5, 0.5, f"episode {ep} has no decision steps", ha="center", transform=ax.transAxes)
        return fig
    t0 = int(s["ts"].iloc[0])
    t1 = t0 + int(cfg.window_s * 1e9)
    s = s[s["ts"] <= t1]
    ts = s["ts"].to_numpy(dtype=np.int64)
    x = trading_time(ts)
    bb, ba = s["best_bid"].to_numpy(dtype=float) * tick, s["best_ask"].to_numpy(dtype=float) * tick
    ax.fill_between(x, bb, ba, step="post", color="lightgrey", alpha=0.7, lw=0, label="market bid–ask")
    ax.step(x, s["mid"].to_numpy(dtype=float) * tick, where="post", lw=0.6, color="black", label="mid")
    ax.step(x, s["bid_quote"].to_numpy(dtype=float) * tick, where="post", lw=0.8, color="tab:green", label="our bid")
    ax.step(x, s["ask_quote"].to_numpy(dtype=float) * tick, where="post", lw=0.8, color="tab:red", label="our ask")
    if len(fills):
        f = fills[(fills["episode"] == ep) & (fills["ts"] >= t0) & (fills["ts"] <= t1)]
        fx = np.interp(f["ts"].to_numpy(dtype=np.int64).astype(float), ts.astype(float), x)
        fp = f["price"].to_numpy(dtype=float) * tick
        buy = f["side"].to_numpy() > 0
        ax.scatter(fx[buy], fp[buy], marker="^", color="tab:green", s=28, zorder=3, label="buy fill")
        ax.scatter(fx[~buy], fp[~buy], marker="v", color="tab:red", s=28, zorder=3, label="sell fill")
    ax.set_title(f"{result.strategy_name}: quotes, episode {ep}, first {cfg.window_s:g} s")
    ax.set_ylabel(f"price ({out.instrument.currency})")
    _time_axis(ax, x, ts)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def markout_figure(result: "RunResult", cfg: Any) -> Any:
    """The markout curve: mean signed markout of our fills against the horizon."""
    from cmm_bt.metrics import MARKOUT_HORIZONS_S

    m = result.metrics
    h = np.array(list(MARKOUT_HORIZONS_S.values()))
    v = np.array([m.get(k, np.nan) for k in MARKOUT_HORIZONS_S], dtype=float)
    fig, ax = new_figure(cfg.width_in * 0.6, cfg.height_in, cfg.dpi)
    ax.plot(h, v, marker="o", color="tab:blue")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xscale("log")
    ax.set_xticks(h, [f"{x:g}" for x in h])
    ax.set_xlabel("seconds after the fill")
    ax.set_ylabel("markout (ticks per unit, + = good for us)")
    ax.set_title("Markout curve")
    return fig
