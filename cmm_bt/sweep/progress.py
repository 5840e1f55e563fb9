"""The sweep's live display: a bar over trials with done / running / failed, the best so far and an ETA,
and one line per finished trial above it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.sweep.records import TrialRecord


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


class SweepProgress:
    """``with SweepProgress(...) as p: p.update(...); p.trial_done(record)``."""

    def __init__(self, console: "Console", total: int, metric: str, describe):
        self.console = console
        self.total = total
        self.metric = metric
        self.describe = describe
        self.started = time.monotonic()
        self.executed = 0  # trials run (not reused) by this invocation
        self.counts = dict(done=0, running=0, failed=0, reused=0)
        self.best: tuple[float, str] | None = None
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]trials"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("trials", total=total, stats="")

    def __enter__(self) -> "SweepProgress":
        self._progress.start()
        self.refresh()
        return self

    def __exit__(self, *exc) -> None:
        self.refresh()
        self._progress.stop()

    def eta(self) -> str:
        remaining = self.total - self.counts["done"] - self.counts["failed"]
        if remaining <= 0:
            return "0:00"
        if not self.executed:
            return "—"
        per_trial = (time.monotonic() - self.started) / self.executed  # wall per trial at this parallelism
        return _duration(per_trial * remaining)

    def refresh(self) -> None:
        c = self.counts
        best = f"best {_num(self.best[0])}" if self.best else "best —"
        stats = (
            f"[green]done {c['done']}[/] · [cyan]running {c['running']}[/] · [red]failed {c['failed']}[/]"
            + (f" · reused {c['reused']}" if c["reused"] else "")
            + f" · {best} · ETA {self.eta()} · {_duration(time.monotonic() - self.started)} elapsed"
        )
        self._progress.update(self._task, completed=c["done"] + c["failed"], stats=stats)

    def set_total(self, total: int) -> None:
        self.total = total
        self._progress.update(self._task, total=total)

    def set_running(self, n: int) -> None:
        self.counts["running"] = n
        self.refresh()

    def notice(self, message: str) -> None:
        self._progress.console.print(f"[yellow]↻ {message}[/]")

    def trial_done(self, record: "TrialRecord", best: "TrialRecord | None") -> None:
        if record.reused:
            self.counts["reused"] += 1
        else:
            self.executed += 1
        if record.status == "ok":
            self.counts["done"] += 1
        else:
            self.counts["failed"] += 1
        if best is not None and best.value is not None:
            new = self.best is None or self.best[1] != best.key
            self.best = (best.value, best.key)
        if not record.reused:
            extra = f" ({record.attempts} attempts)" if (record.attempts or 0) > 1 else ""
            took = f" {record.wall_s:.1f} s" if record.wall_s is not None else ""
            if record.status == "ok":
                line = f"[green]✓[/] {self.describe(record.params)}  {self.metric}={_num(record.value)}{took}{extra}"
            else:
                line = f"[red]✗[/] {self.describe(record.params)}  failed: {record.error}{extra}"
            self._progress.console.print(line)
        if best is not None and best.value is not None and new and not record.reused:
            self._progress.console.print(f"  [bold]★ best so far[/] {self.metric}={_num(best.value)}: {self.describe(best.params)}")
        self.refresh()
