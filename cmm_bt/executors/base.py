"""The executor interface: submit picklable calls, collect their outcomes as they finish.

An executor runs ``fn(*args, **kwargs)`` on workers.  ``fn`` must be importable by the workers (a
module-level function of an installed package), its arguments and result picklable.  A call that
raises is an :class:`Outcome` with ``ok=False`` and a :class:`TaskError`; a worker that dies while
running a call (killed process, lost node) has the call retried up to ``max_retries`` times before
it is reported as failed with ``TaskError.lost`` set.

Typical use (``slots`` calls run at once; more may be queued)::

    with make_executor("local", workers=2) as ex:
        for i, x in enumerate(xs):
            ex.submit(str(i), fn, x)
        while ex.pending:
            for outcome in ex.wait(timeout=0.5):
                ...
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

#: Environment variables that cap the thread pools of BLAS, OpenMP, numba and torch in a worker.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass
class TaskError:
    """Why a call failed: the exception's type, message and traceback, or a lost worker.

    :ivar exit_code: 2 when the call raised a :class:`~cmm_bt.errors.CmmBtError` (bad config or data),
        else 1 (the CLI's exit codes).
    :ivar lost: the worker died running the call (after all retries).
    """

    type: str
    message: str
    traceback: str = ""
    exit_code: int = 1
    lost: bool = False

    @classmethod
    def from_exception(cls, err: BaseException) -> "TaskError":
        from cmm_bt.errors import CmmBtError

        return cls(
            type=type(err).__name__,
            message=str(err),
            traceback="".join(traceback.format_exception(type(err), err, err.__traceback__)),
            exit_code=err.exit_code if isinstance(err, CmmBtError) else 1,
        )

    def one_line(self) -> str:
        """``Type: message`` on one line (the message alone for configuration errors)."""
        text = " ".join(self.message.split())
        return text if self.exit_code == 2 and not self.lost else f"{self.type}: {text}"

    def reraise(self) -> None:
        """Raise it in the caller: a ``CmmBtError`` (exit 2) for config/data errors, else ``RuntimeError``."""
        from cmm_bt.errors import CmmBtError

        if self.exit_code == 2 and not self.lost:
            raise CmmBtError(self.message)
        raise RuntimeError(self.one_line())


@dataclass
class Outcome:
    """One finished call.

    :ivar attempts: how many times the call was started (more than 1 after a worker died); None when
        the executor does not know (Ray retries internally).
    :ivar worker: ``pid@host`` of the worker that ran it (last attempt), when known.
    """

    task_id: str
    ok: bool
    value: Any = None
    error: TaskError | None = None
    attempts: int | None = 1
    worker: str = ""
    wall_s: float = 0.0


def worker_name() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def limit_threads(threads: int) -> None:
    """Cap the thread pools of this process: environment for libraries not yet imported, and the
    runtime setting of numba and torch when they are already imported."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        try:
            sys.modules["torch"].set_num_threads(threads)
        except Exception:  # noqa: BLE001 - a best-effort cap
            pass
    if "numba" in sys.modules:
        try:
            sys.modules["numba"].set_num_threads(min(threads, sys.modules["numba"].config.NUMBA_NUM_THREADS))
        except Exception:  # noqa: BLE001
            pass


def call_task(fn: Callable, args: tuple, kwargs: dict, threads: int | None = None) -> tuple[bool, Any, float, str]:
    """Run one call in a worker: ``(ok, value or TaskError, wall_s, worker)``; never raises."""
    if threads:
        limit_threads(threads)
    t0 = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
        return True, value, time.perf_counter() - t0, worker_name()
    except BaseException as err:  # noqa: BLE001 - every failure of a task is reported, not raised
        return False, TaskError.from_exception(err), time.perf_counter() - t0, worker_name()


class Executor(ABC):
    """Runs submitted calls on workers; ``slots`` of them at once."""

    #: ``local`` or ``ray``.
    name: str = ""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self._notify: Callable[[str], None] | None = None

    @property
    @abstractmethod
    def slots(self) -> int:
        """How many calls run at the same time."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Calls submitted and not yet returned by :meth:`wait` (queued or running)."""

    @abstractmethod
    def submit(self, task_id: str, fn: Callable, *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)`` under ``task_id`` (unique among pending calls)."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until at least one call finished (or ``timeout`` seconds passed); its outcomes."""

    @abstractmethod
    def close(self) -> None:
        """Stop the workers (running calls are abandoned)."""

    def describe(self) -> str:
        """One line for the user: what runs where."""
        return f"{self.name} executor, {self.slots} worker{'s' if self.slots != 1 else ''}"

    def on_notice(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback(message)`` on events worth telling the user (a worker died, a retry)."""
        self._notify = callback

    def notice(self, message: str) -> None:
        self.notices.append(message)
        if self._notify is not None:
            self._notify(message)

    def run_all(self, calls: dict[str, tuple[Callable, tuple]]) -> dict[str, Outcome]:
        """Submit ``{task_id: (fn, args)}`` and wait for all; outcomes by task id."""
        for task_id, (fn, args) in calls.items():
            self.submit(task_id, fn, *args)
        done: dict[str, Outcome] = {}
        while self.pending:
            for outcome in self.wait():
                done[outcome.task_id] = outcome
        return done

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
