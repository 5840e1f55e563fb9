"""Small, fast sweeps: fixed-spread on cffex-if's validation day (a trial takes well under a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def flaky_strategy(tmp_path) -> Path:
    """The fixed-spread strategy with the test plugin's ``flaky-spread`` policy."""
    path = tmp_path / "flaky.yaml"
    path.write_text(
        f"extends: {REPO / 'strategies' / 'fixed-spread.yaml'}\n"
        "dataset: cffex-if\n"
        "execution: {name: flaky-spread, params: {half_spread_ticks: 1.0, skew_ticks_per_unit: 0.2}}\n"
        "reporters: []\n"
    )
    return path


@pytest.fixture
def session():
    from rich.console import Console

    from cmm_bt.api import Session

    return Session.start(plugins_dir=PLUGINS, console=Console(quiet=True))


@pytest.fixture
def sweep(session, data_root):
    """``sweep(strategy, out, params, **spec fields)`` through the library API; returns the SweepResult."""
    from cmm_bt.sweep import SweepSpec, run_sweep

    def run(strategy, out, params, **kw):
        kw.setdefault("workers", 2)
        kw.setdefault("dataset", "cffex-if")
        spec = SweepSpec(strategy=Path(strategy), out=Path(out), params=list(params), data_root=data_root, plugins_dir=PLUGINS, **kw)
        return run_sweep(session, spec)

    return run
