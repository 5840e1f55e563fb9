"""The local executor: a pool of long-lived worker processes on this machine.

One worker per core by default (``os.sched_getaffinity``).  Each worker is a ``spawn``-ed process
that stays alive across calls, so imports, numba compilation and per-process caches (the plugin
session) are paid once, and is replaced after ``max_tasks_per_worker`` calls (memory held by
libraries is given back).  Each worker caps BLAS / OpenMP / numba / torch to ``threads_per_worker``
threads, so N workers on N cores do not oversubscribe them.

Each worker has its own pipe, so when a worker dies (killed, out of memory, ``os._exit``) the parent
knows which call it was running and starts it again on a fresh worker, up to ``max_retries`` times.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cmm_bt.executors.base import Executor, Outcome, TaskError, call_task

DEFAULT_MAX_TASKS_PER_WORKER = 50
DEFAULT_MAX_RETRIES = 2


def default_workers() -> int:
    """One per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _worker_loop(conn: multiprocessing.connection.Connection, threads: int) -> None:
    """A worker's life: receive ``(task_id, payload)``, run it, send ``(task_id, ok, value, wall, who)``; ``None`` ends it."""
    from cmm_bt.executors.base import limit_threads

    limit_threads(threads)  # before the first call imports numpy / numba / torch
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if msg is None:
            return
        task_id, payload = msg
        try:
            fn, args, kwargs = pickle.loads(payload)
        except BaseException as err:  # noqa: BLE001 - e.g. the function cannot be imported here
            reply = (task_id, False, TaskError.from_exception(err), 0.0, "")
        else:
            ok, value, wall, who = call_task(fn, args, kwargs, threads)
            reply = (task_id, ok, value, wall, who)
        try:
            conn.send(reply)
        except BaseException as err:  # noqa: BLE001 - an unpicklable result
            conn.send((task_id, False, TaskError.from_exception(err), reply[3], reply[4]))


@dataclass
class _Task:
    task_id: str
    payload: bytes
    attempts: int = 0


@dataclass
class _Worker:
    proc: Any
    conn: multiprocessing.connection.Connection
    task: _Task | None = None
    done: int = 0
    started: float = field(default_factory=time.monotonic)


class LocalExecutor(Executor):
    """A process pool with per-worker pipes: reuse, recycling, thread caps, retries on worker death.

    :param workers: processes (default: one per core).
    :param max_tasks_per_worker: calls a worker runs before it is replaced (0: never).
    :param max_retries: how many times a call whose worker died is started again.
    :param threads_per_worker: thread cap of BLAS / OpenMP / numba / torch in each worker.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_tasks_per_worker: int = DEFAULT_MAX_TASKS_PER_WORKER,
        max_retries: int = DEFAULT_MAX_RETRIES,
        threads_per_worker: int = 1,
        start_method: str = "spawn",
    ) -> None:
        super().__init__()
        if workers is not None and workers < 1:
            raise ValueError("workers must be >= 1")
        self._slots = workers or default_workers()
        self.max_tasks_per_worker = max_tasks_per_worker
        self.max_retries = max_retries
        self.threads_per_worker = threads_per_worker
        self._ctx = multiprocessing.get_context(start_method)
        self._queue: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []
        self._ready: list[Outcome] = []
        self._ids: set[str] = set()
        self.workers_started = 0
        self._closed = False

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def pending(self) -> int:
        return len(self._ids)

    def submit(self, task_id: str, fn: Callable, *args: Any, **kwargs: Any) -> None:
        if self._closed:
            raise RuntimeError("executor is closed")
        if task_id in self._ids:
            raise ValueError(f"task id {task_id!r} is already pending")
        self._ids.add(task_id)
        try:
            payload = pickle.dumps((fn, args, kwargs))
        except Exception as err:  # noqa: BLE001 - reported as the call's failure
            self._finish(Outcome(task_id, False, error=TaskError.from_exception(err), attempts=0))
            return
        self._queue.append(_Task(task_id, payload))
        self._dispatch()

    # ------------------------------------------------------------------------------ workers
    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_loop, args=(child, self.threads_per_worker), name=f"cmm-bt-worker-{self.workers_started}")
        proc.start()
        child.close()
        self.workers_started += 1
        worker = _Worker(proc, parent)
        self._workers.append(worker)
        return worker

    def _dispatch(self) -> None:
        while self._queue:
            idle = next((w for w in self._workers if w.task is None), None)
            if idle is None:
                if len(self._workers) >= self._slots:
                    return
                idle = self._start_worker()
            task = self._queue.popleft()
            task.attempts += 1
            idle.task = task
            try:
                idle.conn.send((task.task_id, task.payload))
            except (OSError, EOFError):  # died while idle: put the task back, drop the worker
                task.attempts -= 1
                idle.task = None
                self._queue.appendleft(task)
                self._drop(idle)

    def _drop(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        try:
            worker.conn.close()
        except OSError:
            pass
        worker.proc.join(timeout=1)

    def _retire(self, worker: _Worker) -> None:
        """Ask an idle worker to exit (it has run its share of calls)."""
        try:
            worker.conn.send(None)
        except (OSError, EOFError):
            pass
        self._drop(worker)

    def _finish(self, outcome: Outcome) -> None:
        self._ids.discard(outcome.task_id)
        self._ready.append(outcome)

    def _on_death(self, worker: _Worker) -> None:
        worker.proc.join(timeout=1)
        code = worker.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        task = worker.task
        pid = worker.proc.pid
        self._drop(worker)
        if task is None:
            return
        if task.attempts <= self.max_retries:
            self.notice(f"worker {pid} died ({how}) running {task.task_id}; retrying (attempt {task.attempts + 1} of {self.max_retries + 1})")
            self._queue.appendleft(task)
        else:
            self.notice(f"worker {pid} died ({how}) running {task.task_id}; giving up after {task.attempts} attempts")
            err = TaskError("WorkerDied", f"the worker died ({how}) on each of {task.attempts} attempts", lost=True)
            self._finish(Outcome(task.task_id, False, error=err, attempts=task.attempts, worker=str(pid)))

    def _collect(self, timeout: float | None) -> None:
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return
        handles: list[Any] = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(handles, timeout=timeout))
        for w in busy:
            if w.conn in ready:
                try:
                    task_id, ok, value, wall, who = w.conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    self._on_death(w)
                    continue
                task, w.task = w.task, None
                w.done += 1
                error = None if ok else value
                self._finish(Outcome(task_id, ok, value if ok else None, error, task.attempts, who, wall))
                if self.max_tasks_per_worker and w.done >= self.max_tasks_per_worker:
                    self._retire(w)
            elif w.proc.sentinel in ready:
                self._on_death(w)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready and (self._queue or any(w.task is not None for w in self._workers)):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._collect(remaining)
            self._dispatch()
            if deadline is not None and time.monotonic() >= deadline:
                break
        out, self._ready = self._ready, []
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in list(self._workers):
            if w.task is None:
                try:
                    w.conn.send(None)
                except (OSError, EOFError):
                    pass
            else:
                w.proc.kill()
        for w in list(self._workers):
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            try:
                w.conn.close()
            except OSError:
                pass
        self._workers.clear()
        self._queue.clear()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and the progress display)."""
        return [w.proc.pid for w in self._workers if w.proc.is_alive()]

    def __del__(self) -> None:  # a forgotten close must not leave processes behind
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
