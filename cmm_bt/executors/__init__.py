"""Executors: one interface (:class:`Executor`) to run calls on local worker processes or Ray.

``local`` (the default) is a pool of long-lived processes on this machine; ``ray`` runs Ray tasks on
a local Ray instance or an existing cluster.  ``sweep`` and ``compare`` run their runs through them
(see :mod:`cmm_bt.executors.jobs`).
"""

from __future__ import annotations

from cmm_bt.errors import CmmBtError
from cmm_bt.executors.base import Executor, Outcome, TaskError

#: Executor names accepted by ``--executor``.
EXECUTOR_NAMES: tuple[str, ...] = ("local", "ray")


def make_executor(
    name: str = "local",
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    max_retries: int = 2,
    max_tasks_per_worker: int = 50,
    threads_per_worker: int = 1,
) -> Executor:
    """The executor ``name`` (``local`` or ``ray``); an unknown name or missing Ray is a :class:`CmmBtError`."""
    if workers is not None and workers < 1:
        raise CmmBtError(f"must be at least 1 (got {workers})", key="--workers")
    if max_retries < 0:
        raise CmmBtError(f"must be at least 0 (got {max_retries})", key="--retries")
    if name == "local":
        from cmm_bt.executors.local import LocalExecutor

        if ray_address:
            raise CmmBtError("--ray-address needs --executor ray", key="--ray-address")
        return LocalExecutor(workers, max_tasks_per_worker=max_tasks_per_worker, max_retries=max_retries, threads_per_worker=threads_per_worker)
    if name == "ray":
        from cmm_bt.executors.ray_executor import RayExecutor

        return RayExecutor(
            workers, address=ray_address, max_tasks_per_worker=max_tasks_per_worker, max_retries=max_retries, threads_per_worker=threads_per_worker
        )
    raise CmmBtError(f"unknown executor {name!r} (known: {', '.join(EXECUTOR_NAMES)})", key="--executor")


__all__ = ["EXECUTOR_NAMES", "Executor", "Outcome", "TaskError", "make_executor"]
