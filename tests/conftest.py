"""Shared fixtures: the real-data root, an isolated cache and the in-process CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real market data (``CMM_BT_DATA_ROOT``); the Makefile and CI always set it."""
    value = os.environ.get("CMM_BT_DATA_ROOT")
    if not value:
        pytest.skip("CMM_BT_DATA_ROOT is not set (make test sets it to ../shared/datasets)")
    return Path(value)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test session gets its own cache folder unless a test sets another."""
    monkeypatch.setenv("CMM_BT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("CMM_BT_ENERGY_SECONDS", "0.05")  # energy-per-decision windows (cmm_bt.energy): short in tests


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli("run", ...) -> CliResult(code, out, err)``."""
    from cmm_bt.cli import main

    def run(*args: str) -> CliResult:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(int(exc.value.code or 0), captured.out, captured.err)

    return run
