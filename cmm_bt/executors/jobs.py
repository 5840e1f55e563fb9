"""Runs as executor calls: :class:`RunJob` describes one ``prepare_run`` + ``execute_run``.

:func:`run_job` is what a worker executes.  Everything a worker needs travels in the job, resolved
by the caller (absolute strategy path, data root and cache folder, plugin settings), so a Ray worker
on another machine with another working directory and environment runs the same thing; each worker
process builds its own plugin :class:`~cmm_bt.api.Session` once and reuses it for later jobs.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmm_bt.executors.base import worker_name

if TYPE_CHECKING:
    from cmm_bt.api import Session
    from cmm_bt.executors.base import Executor
    from cmm_bt.results import RunResult


@dataclass(frozen=True)
class RunJob:
    """One run, in plain picklable fields.

    :ivar strategy: the strategy file (absolute path).
    :ivar overrides: ``key=value`` overrides, applied in order.
    :ivar out_dir: the run folder to write (absolute); with ``replace`` an existing one is removed first
        (the caller knows it is not a complete result it wants to keep).
    :ivar starts_file: where each start appends one JSON line (pid, host, time), so a run whose worker
        died can be told apart from one that ran once.
    """

    strategy: str
    out_dir: str
    overrides: tuple[str, ...] = ()
    dataset: str | None = None
    data_root: str | None = None
    cache_dir: str | None = None
    plugins_dir: str | None = None
    disabled: tuple[str, ...] = ()
    replace: bool = False
    starts_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_SESSIONS: dict[tuple, "Session"] = {}


def worker_session(plugins_dir: str | None, disabled: tuple[str, ...]) -> "Session":
    """This process's plugin session for these settings (built on first use, then reused)."""
    key = (plugins_dir, tuple(disabled))
    if key not in _SESSIONS:
        from rich.console import Console

        from cmm_bt.api import Session

        _SESSIONS[key] = Session.start(
            plugins_dir=Path(plugins_dir) if plugins_dir else None, disabled=tuple(disabled), console=Console(quiet=True)
        )
    return _SESSIONS[key]


def _record_start(path: str) -> None:
    line = json.dumps({"worker": worker_name(), "time": time.time()}) + "\n"
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:  # one short line per start: appends do not interleave
        f.write(line)


def count_starts(path: Path) -> int:
    """How many times a job with this ``starts_file`` was started."""
    try:
        return sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    except FileNotFoundError:
        return 0


def run_job(job: RunJob) -> dict[str, Any]:
    """Prepare and execute the run in this process: ``{run_dir, metrics, worker, wall_s}``."""
    t0 = time.perf_counter()
    if job.starts_file:  # first: a worker killed while importing the project counts as an attempt too
        _record_start(job.starts_file)
    from cmm_bt.api import execute_run, prepare_run

    out = Path(job.out_dir)
    if job.replace and out.exists():
        shutil.rmtree(out)
    session = worker_session(job.plugins_dir, job.disabled)
    run, market = prepare_run(
        session,
        Path(job.strategy),
        overrides=list(job.overrides),
        dataset=job.dataset,
        data_root=Path(job.data_root) if job.data_root else None,
        cache_dir=Path(job.cache_dir) if job.cache_dir else None,
    )
    result = execute_run(session, run, market, out_dir=out)
    return {"run_dir": str(result.run_dir), "metrics": dict(result.metrics), "worker": worker_name(), "wall_s": time.perf_counter() - t0}


def run_jobs(executor: "Executor", jobs: dict[str, RunJob], *, on_done=None) -> dict[str, "RunResult"]:
    """Run ``{name: job}`` on ``executor``; each finished run read back from its folder.

    ``on_done(name, outcome)`` is called as each one finishes.  The first failure is raised once all
    have finished: a configuration or data error as :class:`~cmm_bt.errors.CmmBtError` (exit 2),
    anything else as ``RuntimeError`` (exit 1).
    """
    from cmm_bt.results import read_run_result

    for name, job in jobs.items():
        executor.submit(name, run_job, job)
    results: dict[str, "RunResult"] = {}
    failures = []
    while executor.pending:
        for outcome in executor.wait(timeout=1.0):
            if on_done is not None:
                on_done(outcome.task_id, outcome)
            if outcome.ok:
                results[outcome.task_id] = read_run_result(Path(outcome.value["run_dir"]))
            else:
                failures.append(outcome)
    if failures:
        first = min(failures, key=lambda o: list(jobs).index(o.task_id))
        first.error.reraise()
    return {name: results[name] for name in jobs}


def plugin_settings(plugins_dir: str | Path | None, disabled: tuple[str, ...] = ()) -> tuple[str | None, tuple[str, ...]]:
    """The plugin settings for jobs, environment included (``CMM_BT_PLUGINS_DIR``, ``CMM_BT_DISABLE_PLUGINS``),
    resolved here: a Ray worker on another machine does not have this process's environment."""
    import os

    pdir = plugins_dir or os.environ.get("CMM_BT_PLUGINS_DIR") or None
    env_disabled = tuple(s.strip() for s in os.environ.get("CMM_BT_DISABLE_PLUGINS", "").split(",") if s.strip())
    return (str(Path(pdir).resolve()) if pdir else None), tuple(dict.fromkeys((*disabled, *env_disabled)))


def _unique_run_dir(name: str, dataset: str, root: Path, taken: set[Path]) -> Path:
    from cmm_bt.results import default_run_dir

    path = default_run_dir(name, dataset, root=root)
    base, n = path, 1
    while path in taken:  # two runs of one batch in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    taken.add(path)
    return path


def run_prepared(
    executor: "Executor",
    prepared: list,
    *,
    out: Path | None,
    overrides: list[str],
    dataset: str | None,
    data_root: Path | None,
    plugins_dir: Path | None,
    disabled: tuple[str, ...],
    console,
) -> list["RunResult"]:
    """Run ``prepare_run``'s ``(run, market)`` pairs again on the executor's workers (``compare``):
    each worker prepares its run from the same strategy file and overrides; results in order."""
    from cmm_bt.data.manifest import resolve_data_root

    pdir, disabled = plugin_settings(plugins_dir, tuple(disabled))
    root = Path(out) if out else Path("runs")
    taken: set[Path] = set()
    jobs: dict[str, RunJob] = {}
    for i, (run, _market) in enumerate(prepared):
        target = _unique_run_dir(run.name, run.dataset.name, root, taken)
        jobs[f"{run.name} on {run.dataset.name} #{i}"] = RunJob(
            strategy=str(Path(run.strategy_file).resolve()),
            out_dir=str(target.resolve()),
            overrides=tuple(overrides),
            dataset=dataset,
            data_root=str(resolve_data_root(data_root)),
            cache_dir=str(Path(run.cache_dir).resolve()),
            plugins_dir=pdir,
            disabled=disabled,
        )
    console.print(f"[bold]running {len(jobs)} run{'s' if len(jobs) != 1 else ''} on the {executor.describe()}[/]")

    def done(name, outcome):
        mark = "[green]✓[/]" if outcome.ok else "[red]✗[/]"
        console.print(f"{mark} {name.rsplit(' #', 1)[0]} ({outcome.wall_s:.1f} s)" + ("" if outcome.ok else f": {outcome.error.one_line()}"))

    executor.on_notice(lambda message: console.print(f"[yellow]↻ {message}[/]"))
    return list(run_jobs(executor, jobs, on_done=done).values())
