"""Test helpers for plugin authors (loaded by pytest through the ``pytest11`` entry point).

Fixtures: ``tiny_market`` (a small two-sided book with trades, as :class:`MarketData`) and
``cmm_bt_session`` (a plugin session with every installed plugin).  Context manager:
:func:`registered_plugin` registers a plugin object for the duration of a block.  Functions:
:func:`make_run` (a validated :class:`~cmm_bt.run.RunSpec` from a strategy mapping, without
files) and :func:`run_stages` (a strategy's pipeline stages run on a market, products returned).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pytest

from cmm_bt.data.schema import ASK, BID, BOOK, TRADE, Instrument, MarketData, make_events

if TYPE_CHECKING:
    from cmm_bt.pipeline import Pipeline, Products
    from cmm_bt.registry import Registry
    from cmm_bt.run import RunSpec

MS = 1_000_000


def tiny_market(n_steps: int = 200, seed: int = 0) -> MarketData:
    """A small random-walk book (one level per side, 1-tick spread) with a trade every step."""
    rng = np.random.default_rng(seed)
    mid = 1000 + np.cumsum(rng.choice([-1, 0, 0, 1], size=n_steps))
    rows = []
    for i, m in enumerate(mid):
        t = (i + 1) * 50 * MS
        rows += [(t, BOOK, BID, m, 5.0), (t, BOOK, ASK, m + 1, 5.0)]
        if i:
            prev = mid[i - 1]
            if prev != m:  # levels that left the touch
                rows += [(t, BOOK, BID, prev, 0.0) if prev > m else (t, BOOK, ASK, prev + 1, 0.0)]
        side = BID if rng.random() < 0.5 else ASK
        rows.append((t + MS, TRADE, side, m + 1 if side == BID else m, float(rng.integers(1, 4))))
    ts, ev, sd, px, q = map(np.array, zip(*rows))
    events = make_events(exch_ts=ts, local_ts=ts + MS // 2, ev=ev, side=sd, price=px, qty=q)
    return MarketData(events, Instrument("TINY", tick_size=0.01), [(int(ts[0]), int(ts[-1]) + 1)])


def make_run(strategy: dict[str, Any], registry: "Registry", *, splits: dict[str, tuple[int, int]], cache_dir: Path,
             console=None, name: str = "test") -> "RunSpec":
    """A run of the strategy mapping ``strategy`` (both validation stages) over ``splits``."""
    from rich.console import Console

    from cmm_bt.config.loader import validate_strategy
    from cmm_bt.run import RunSpec

    st, resolved = validate_strategy(strategy, file=f"{name}.yaml", registry=registry)
    return RunSpec(name=name, strategy=st, resolved=resolved, strategy_file=None, dataset=SimpleNamespace(name="test"),
                   splits=splits, cache_dir=Path(cache_dir), registry=registry, console=console or Console(quiet=True))


def run_stages(run: "RunSpec", market: MarketData, targets: list[type] | None = None) -> "tuple[Products, Pipeline]":
    """Build the run's pipeline and run it (to ``targets``); returns the products and the pipeline."""
    from cmm_bt.api import build_pipeline, stage_context

    pipeline = build_pipeline(run)
    return pipeline.run(stage_context(run, market), targets), pipeline


@contextlib.contextmanager
def registered_plugin(pm, plugin: object, name: str) -> Iterator[object]:
    """Register ``plugin`` on ``pm`` under ``name``; always unregistered afterwards."""
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


@pytest.fixture(name="tiny_market")
def _tiny_market_fixture() -> MarketData:
    return tiny_market()


@pytest.fixture
def cmm_bt_session():
    from rich.console import Console

    from cmm_bt.api import Session

    return Session.start(console=Console(record=True, width=120))
