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
    from cmm_bt.api import execute_run, prepare_run

    t0 = time.perf_counter()
    if job.starts_file:
        _record_start(job.starts_file)
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
