"""What one backtest produces: the raw material of metrics, reports and the run folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cmm_bt.data.schema import Instrument

#: Columns of :attr:`BacktestOutput.steps`, one row per decision step.
STEP_COLUMNS = {
    "ts": "int64",  # local decision time, ns
    "episode": "int32",
    "best_bid": "int64",  # local view, ticks
    "best_ask": "int64",
    "mid": "float64",  # ticks
    "position": "float64",  # true (exchange-side) inventory after the step's events
    "cash": "float64",  # money, fees included
    "equity": "float64",  # cash + Instrument.value(position, mid) (mark to mid), money
    "bid_quote": "float64",  # ticks, NaN when no bid was wanted
    "ask_quote": "float64",
    "decision_latency_ns": "int64",  # wall time of the policy call (and hooks); NOT_MEASURED with a compiled policy
}

#: ``decision_latency_ns`` of a step whose policy call was not timed (compiled policies).
NOT_MEASURED = -1

#: Columns of :attr:`BacktestOutput.fills`, one row per fill (partial fills are separate rows).
FILL_COLUMNS = {
    "ts": "int64",  # exchange time of the fill, ns
    "local_ts": "int64",  # when the agent learns of it (ts + response latency)
    "order_id": "int64",  # deterministic: 1, 2, 3 ... in submission order
    "side": "int8",  # +1 we bought, -1 we sold
    "price": "int64",  # ticks
    "qty": "float64",
    "fee": "float64",  # money paid (negative = rebate)
    "maker": "bool",  # False for taker fills (crossing orders, end-of-episode flatten)
    "episode": "int32",
    "mid_at_fill": "float64",  # exchange mid in ticks just before the fill
}


class StepsFile:
    """The steps of a replay written to a parquet file as they were produced, read back on demand.

    Row groups hold whole episodes in step order (:class:`cmm_bt.engine.steps.StepWriter`), so
    :meth:`chunks` gives consumers whole episodes a row group at a time; :meth:`frame` reads it all.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        meta = pq.ParquetFile(self.path).metadata
        self.rows, self.groups = int(meta.num_rows), int(meta.num_row_groups)

    def move_to(self, path: Path) -> None:
        """Move the file (``os.replace``: same file system) and read it from there from now on."""
        os.replace(self.path, path)
        self.path = Path(path)

    def now_at(self, path: Path) -> None:
        """The file was moved with its folder: read it from ``path`` from now on."""
        self.path = Path(path)

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        f = pq.ParquetFile(self.path)
        for g in range(self.groups):
            yield f.read_row_group(g, columns=columns).to_pandas()

    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.path)


class BacktestOutput:
    """Everything the engine measured in one run.

    :ivar steps: per decision step, ``STEP_COLUMNS`` (a :class:`pandas.DataFrame`; a run that wrote
        its steps to a file as it went (:class:`StepsFile`) reads the file the first time ``steps`` is
        used; :attr:`n_steps` and :meth:`step_chunks` do not read it whole).
    :ivar fills: per fill, ``FILL_COLUMNS``.
    :ivar episodes: per episode: ``episode, start_ns, end_ns, pnl, fees, fills, volume,
        mean_abs_position, max_abs_position``.
    :ivar counters: order-flow counts: ``orders_submitted, orders_cancelled, orders_rejected,
        orders_filled`` and ``events`` (market events replayed); the engine adds
        ``orders_rejected_post_only, orders_rejected_position_limit, orders_rejected_price_range,
        taker_orders`` (crossing orders and end-of-episode flattens) and ``steps``.
    :ivar wall_s: wall time of the replay (not data loading), seconds.
    """

    def __init__(self, instrument: Instrument, steps: "pd.DataFrame | StepsFile", fills: pd.DataFrame,
                 episodes: pd.DataFrame, counters: dict[str, int] | None = None, wall_s: float = 0.0):
        self.instrument = instrument
        self._steps = steps
        self.fills = fills
        self.episodes = episodes
        self.counters = dict(counters or {})
        self.wall_s = wall_s

    @property
    def steps_file(self) -> StepsFile | None:
        """Where the steps were written during the replay, if they were."""
        return self._steps if isinstance(self._steps, StepsFile) else None

    @property
    def steps(self) -> pd.DataFrame:
        if isinstance(self._steps, StepsFile):
            self._steps = self._steps.frame()
        return self._steps

    @property
    def n_steps(self) -> int:
        return self._steps.rows if isinstance(self._steps, StepsFile) else len(self._steps)

    def step_chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The steps (only ``columns``, default all) as consecutive frames of whole episodes, in step order."""
        if isinstance(self._steps, StepsFile):
            yield from self._steps.chunks(columns)
        elif len(self._steps):
            yield self._steps if columns is None else self._steps[columns]

    def step_column(self, name: str) -> np.ndarray:
        """One column of the steps, whole (read from the file when the steps are there)."""
        parts = [c[name].to_numpy() for c in self.step_chunks([name])]
        if not parts:
            return np.zeros(0, STEP_COLUMNS[name])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
