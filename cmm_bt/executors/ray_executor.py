"""The Ray executor: each call is a Ray task (``num_cpus=1``), on a local Ray instance or a cluster.

``address`` (``--ray-address``), else ``$RAY_ADDRESS``, connects to an existing cluster (``ray start
--head`` on one machine, ``ray start --address HEAD:PORT`` on the others); without either a local
Ray instance with ``workers`` CPUs is started for the executor and shut down with it.  An already
initialised Ray (``ray.init`` called by the program) is used as it is and left running.

Ray keeps its worker processes alive across tasks (imports and numba compilation are paid once per
worker) and replaces one after ``max_tasks_per_worker`` tasks (``max_calls``).  When a worker dies
(killed process, lost node) Ray itself starts the task again, up to ``max_retries`` times
(``max_retries`` of the task; exceptions raised by the call are not retried: they are results).
Workers cap their thread pools through the job's ``runtime_env`` environment variables.

Ray is the optional extra ``cmm-bt[ray]``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from cmm_bt.errors import CmmBtError
from cmm_bt.executors.base import THREAD_ENV_VARS, Executor, Outcome, TaskError, call_task

INSTALL_HINT = "the ray executor needs Ray: pip install 'cmm-bt[ray]' (or pip install 'ray[default]>=2.9')"


def _ray_call(fn: Callable, args: tuple, kwargs: dict, threads: int) -> tuple[bool, Any, float, str]:
    """The body of every Ray task (module level: workers import it by name)."""
    return call_task(fn, args, kwargs, threads)


def _enable_token_auth_if_available() -> None:
    """Connect with Ray's token authentication when a token is at hand and the user chose no mode.

    Clusters started with ``ray start`` use token authentication by default in recent Ray (the token
    is written to ``~/.ray/auth_token``), but ``ray.init(address=...)`` only enables it on the client
    for ``address='auto'``; this does the same for an explicit address.  ``RAY_AUTH_MODE`` set by the
    user always wins.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def import_ray():
    try:
        import ray
    except ImportError:
        raise CmmBtError(INSTALL_HINT, key="--executor ray") from None
    return ray


class RayExecutor(Executor):
    """Ray tasks with worker reuse, recycling (``max_calls``) and Ray's retries on worker death.

    :param workers: CPUs of the local instance, and at most this many tasks in flight (default: the
        cluster's CPUs).
    :param address: an existing cluster (``host:port`` or ``auto``); default ``$RAY_ADDRESS``.
    """

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        max_tasks_per_worker: int = 50,
        max_retries: int = 2,
        threads_per_worker: int = 1,
    ) -> None:
        super().__init__()
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if "ray" not in sys.modules:  # both settings are read when Ray is imported
            if self.address:
                _enable_token_auth_if_available()
            else:  # Ray's single-machine mode: a local instance binds to and talks over the loopback interface only
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = import_ray()
        self._ray = ray
        self.threads_per_worker = threads_per_worker
        self.max_retries = max_retries
        env = {var: str(threads_per_worker) for var in THREAD_ENV_VARS}
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": env})
        self._owns = False
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, **options)
                else:
                    from cmm_bt.executors.local import default_workers

                    # a local instance listens on the loopback interface only
                    ray.init(num_cpus=workers or default_workers(), _node_ip_address="127.0.0.1", **options)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"at {self.address}" if self.address else "locally"
                hint = " (a cluster with token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)" if self.address else ""
                raise CmmBtError(f"cannot start or reach Ray {where}: {' '.join(str(err).split())}{hint}", key="--ray-address") from None
            self._owns = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._slots = max(1, min(workers, cpus) if workers else cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False, max_calls=max_tasks_per_worker)(_ray_call)
        self._refs: dict[Any, str] = {}
        self._closed = False

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def pending(self) -> int:
        return len(self._refs)

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else ("local Ray instance" if self._owns else "the running Ray instance")
        return f"ray executor ({where}), {self._slots} worker{'s' if self._slots != 1 else ''}"

    def submit(self, task_id: str, fn: Callable, *args: Any, **kwargs: Any) -> None:
        if self._closed:
            raise RuntimeError("executor is closed")
        if task_id in self._refs.values():
            raise ValueError(f"task id {task_id!r} is already pending")
        ref = self._remote.remote(fn, args, kwargs, self.threads_per_worker)
        self._refs[ref] = task_id

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._refs:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # also collect whatever else is finished by now
            more, _ = ray.wait([r for r in self._refs if r not in ready], num_returns=len(self._refs) - len(ready), timeout=0)
            ready = ready + more
        out = []
        for ref in ready:
            task_id = self._refs.pop(ref)
            try:
                ok, value, wall, who = ray.get(ref)
            except ray.exceptions.RayError as err:  # worker died after Ray's retries, node lost, ...
                lost = isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError))
                message = " ".join(str(err).split())
                if lost:
                    message = f"the worker died on each of {self.max_retries + 1} attempts: {message[:300]}"
                    self.notice(f"{task_id}: ray worker died; giving up after {self.max_retries + 1} attempts")
                out.append(Outcome(task_id, False, error=TaskError(type(err).__name__, message, lost=lost), attempts=None))
                continue
            out.append(Outcome(task_id, ok, value if ok else None, None if ok else value, attempts=None, worker=who, wall_s=wall))
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._refs.clear()
        if self._owns:
            self._ray.shutdown()
