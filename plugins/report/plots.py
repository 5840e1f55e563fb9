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
        if len(result.output.steps):
            self._write_all(result, Path(folder))

    def report(self, result: "RunResult", console: "Console") -> None:
        if result.run_dir is None:
            console.print("[dim]plots: no run folder (run_dir is None); charts skipped[/dim]")
            return
        if len(result.output.steps) == 0:
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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(self.config.width_in, self.config.height_in), dpi=self.config.dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        return fig, ax

    def _save(self, fig: Any, path: Path) -> Path:
        fig.tight_layout()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            fig.savefig(tmp, format="png", dpi=self.config.dpi)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @staticmethod
    def _episode_bounds(ax: Any, episode: np.ndarray) -> None:
        """Dotted vertical lines where a new episode starts (x = step index)."""
        for i in np.flatnonzero(episode[1:] != episode[:-1]) + 1:
            ax.axvline(i, color="grey", lw=0.6, ls=":")

    def _equity(self, result: "RunResult", path: Path) -> Path:
        out = result.output
        curve = equity_curve(out)[1:]  # one point per step (drop the leading 0)
        fig, ax = self._figure()
        x = np.arange(curve.size)
        ax.plot(x, curve, lw=0.9, color="tab:blue")
        ax.axhline(0, color="black", lw=0.5)
        self._episode_bounds(ax, out.steps["episode"].to_numpy())
        ax.set_title(f"{result.strategy_name} on {result.dataset_name}: equity (episodes chained)")
        ax.set_xlabel("decision step")
        ax.set_ylabel(f"equity ({out.instrument.currency})")
        return self._save(fig, path)

    def _inventory(self, result: "RunResult", path: Path) -> Path:
        out = result.output
        pos = out.steps["position"].to_numpy(dtype=float)
        fig, ax = self._figure()
        ax.step(np.arange(pos.size), pos, where="post", lw=0.8, color="tab:purple")
        ax.axhline(0, color="black", lw=0.5)
        self._episode_bounds(ax, out.steps["episode"].to_numpy())
        ax.set_title(f"{result.strategy_name} on {result.dataset_name}: inventory")
        ax.set_xlabel("decision step")
        ax.set_ylabel("position")
        return self._save(fig, path)

    def _quotes(self, result: "RunResult", path: Path) -> Path:
        out = result.output
        steps, fills = out.steps, out.fills
        ep = self.config.episode if self.config.episode is not None else steps["episode"].iloc[0]
        s = steps[steps["episode"] == ep]
        fig, ax = self._figure()
        tick = out.instrument.tick_size
        if len(s) == 0:
            ax.text(0.5, 0.5, f"episode {ep} has no decision steps", ha="center", transform=ax.transAxes)
            return self._save(fig, path)
        t0 = int(s["ts"].iloc[0])
        t1 = t0 + int(self.config.window_s * 1e9)
        s = s[s["ts"] <= t1]
        x = (s["ts"].to_numpy() - t0) / 1e9
        ax.step(x, s["mid"].to_numpy(dtype=float) * tick, where="post", lw=0.8, color="black", label="mid")
        ax.step(x, s["bid_quote"].to_numpy(dtype=float) * tick, where="post", lw=0.7, color="tab:green", label="our bid")
        ax.step(x, s["ask_quote"].to_numpy(dtype=float) * tick, where="post", lw=0.7, color="tab:red", label="our ask")
        if len(fills):
            f = fills[(fills["episode"] == ep) & (fills["ts"] >= t0) & (fills["ts"] <= t1)]
            fx = (f["ts"].to_numpy() - t0) / 1e9
            fp = f["price"].to_numpy(dtype=float) * tick
            buy = f["side"].to_numpy() > 0
            ax.scatter(fx[buy], fp[buy], marker="^", color="tab:green", s=28, zorder=3, label="buy fill")
            ax.scatter(fx[~buy], fp[~buy], marker="v", color="tab:red", s=28, zorder=3, label="sell fill")
        ax.set_title(f"{result.strategy_name}: quotes, episode {ep}, first {self.config.window_s:g} s")
        ax.set_xlabel("seconds from episode start")
        ax.set_ylabel("price")
        ax.legend(loc="upper left", fontsize="small")
        return self._save(fig, path)
