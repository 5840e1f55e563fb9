"""Options shared by several commands."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import typer

DATA_ROOT = typer.Option(None, "--data-root", help="Folder the dataset files are relative to (default: $CMM_BT_DATA_ROOT, else datasets/).")
DATASET = typer.Option(None, "--dataset", "-d", help="Dataset manifest name (datasets/NAME.yaml) or path; overrides the strategy's.")
OVERRIDES = typer.Option([], "--override", "-o", help="Override a strategy key: -o engine.maker_fee=-0.0001 (repeatable).")
PLUGINS_DIR = typer.Option(None, "--plugins-dir", help="Also load every *.py file of this folder as a plugin.")
DISABLE = typer.Option([], "--disable", "-p", help="Block a plugin by name (repeatable); also CMM_BT_DISABLE_PLUGINS.")


def session(plugins_dir: Path | None, disable: list[str]):
    from cmm_bt.api import Session

    return Session.start(plugins_dir=plugins_dir, disabled=tuple(d.removeprefix("no:") for d in disable))


# executors (sweep, compare): see cmm_bt/executors
EXECUTOR = typer.Option(None, "--executor", help="local (a pool of worker processes; sweep's default) or ray (Ray tasks; the extra cmm-bt\\[ray]). compare without it: in this process.")
WORKERS = typer.Option(None, "--workers", help="Runs at once (default: one per core; ray: the cluster's CPUs).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="An existing Ray cluster (host:port); default $RAY_ADDRESS, else a local Ray instance.")


def executor_name(executor: str | None, ray_address: str | None) -> str:
    """``--executor`` as given; without it ``ray`` when ``--ray-address`` is given, else ``local``."""
    if executor is None:
        return "ray" if ray_address else "local"
    return executor


@contextlib.contextmanager
def executor_or_none(executor: str | None, workers: int | None, ray_address: str | None) -> Iterator:
    """The executor of ``--executor`` / ``--workers`` / ``--ray-address`` for the block, or None when
    none was given (the command then runs everything in its own process)."""
    if executor is None and workers is None and ray_address is None:
        yield None
        return
    from cmm_bt.executors import make_executor

    pool = make_executor(executor_name(executor, ray_address), workers=workers, ray_address=ray_address)
    try:
        yield pool
    finally:
        pool.close()
