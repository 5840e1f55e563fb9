"""Shared fixtures of the RL plugin's tests: the embedded synthetic market and small environments over it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

_here = str(Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)

ROOT = Path(__file__).resolve().parents[3]
STRATEGIES = ROOT / "strategies"


@dataclass
class Synthetic:
    run: object
    market: object
    engine: object


@pytest.fixture(scope="session")
def synth() -> Synthetic:
    """The default dataset (embedded synthetic market) with rl-ppo.yaml's engine settings."""
    from rich.console import Console

    from cmm_bt.api import Session, prepare_run
    from cmm_bt.engine.config import EngineConfig

    session = Session.start(console=Console(quiet=True))
    run, market = prepare_run(session, STRATEGIES / "rl-ppo.yaml")
    return Synthetic(run, market, EngineConfig(**run.strategy.engine))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from cmm_bt.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return int(exc.value.code or 0), captured.out, captured.err

    return run
