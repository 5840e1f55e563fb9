"""The steps table of a replay, built an episode at a time: in memory, or written to a parquet file as it goes.

:func:`run_backtest <cmm_bt.engine.loop.run_backtest>` records an episode's steps in a buffer of the
episode's length (``rec``, :mod:`cmm_bt.engine.kernel`) and hands them to a :class:`StepWriter` when
the episode ends: :class:`StepColumns` fills the run's columns in memory, :class:`StepFileWriter`
appends them to a parquet file, so a replay holds one episode's steps (plus a row group's worth)
whatever the length of the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cmm_bt.data.schema import Instrument
from cmm_bt.engine import kernel as K
from cmm_bt.engine.output import STEP_COLUMNS, StepsFile

#: Fewest steps in one row group of a steps file (whole episodes are added until it holds as many).
ROW_GROUP_STEPS = 1 << 16

_SCHEMA = pa.schema([(name, pa.from_numpy_dtype(np.dtype(dtype))) for name, dtype in STEP_COLUMNS.items()])


def episode_steps(rec: np.ndarray, times: np.ndarray, episode: int, latency: np.ndarray,
                  instrument: Instrument) -> dict[str, np.ndarray]:
    """``STEP_COLUMNS`` of one episode from its step records ``rec [n, N_REC]``, decision times and latencies."""
    best_bid = rec[:, K.R_BID].astype(np.int64)
    best_ask = rec[:, K.R_ASK].astype(np.int64)
    mid = 0.5 * (best_bid + best_ask)
    pos, cash = rec[:, K.R_POS].copy(), rec[:, K.R_CASH].copy()
    with np.errstate(divide="ignore", invalid="ignore"):  # inverse: no book yet at a flat step
        marked = np.where(pos != 0, instrument.value(pos, mid), 0.0)
    return {
        "ts": times, "episode": np.full(times.size, episode, np.int32), "best_bid": best_bid, "best_ask": best_ask,
        "mid": mid, "position": pos, "cash": cash, "equity": cash + marked, "bid_quote": rec[:, K.R_BIDQUOTE].copy(),
        "ask_quote": rec[:, K.R_ASKQUOTE].copy(), "decision_latency_ns": np.asarray(latency, dtype=np.int64),
    }


class StepWriter(Protocol):
    """Where a replay puts its steps, an episode at a time, in step order."""

    def write(self, k0: int, columns: dict[str, np.ndarray]) -> None:
        """The steps ``k0 .. k0 + n - 1`` (one episode) as ``STEP_COLUMNS`` arrays."""

    def close(self) -> "pd.DataFrame | StepsFile":
        """The whole table, once every episode is written."""


class StepColumns:
    """The run's steps in memory: one array per column of ``steps`` rows, filled an episode at a time."""

    def __init__(self, steps: int):
        self.columns = {name: np.empty(steps, dtype) for name, dtype in STEP_COLUMNS.items()}

    def write(self, k0: int, columns: dict[str, np.ndarray]) -> None:
        for name, values in columns.items():
            self.columns[name][k0 : k0 + values.size] = values

    def close(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns, copy=False)


class StepFileWriter:
    """The run's steps appended to the parquet file ``path`` (created; removed if the replay fails), row
    groups of whole episodes holding at least :data:`ROW_GROUP_STEPS` steps (the last one fewer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._writer = pq.ParquetWriter(self.path, _SCHEMA)
        self._pending: list[dict[str, np.ndarray]] = []
        self._rows = 0

    def write(self, k0: int, columns: dict[str, np.ndarray]) -> None:
        self._pending.append(columns)
        self._rows += columns["ts"].size
        if self._rows >= ROW_GROUP_STEPS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            batch = {name: np.concatenate([c[name] for c in self._pending]) for name in STEP_COLUMNS}
            self._writer.write_table(pa.table(batch, schema=_SCHEMA), row_group_size=self._rows)
        self._pending, self._rows = [], 0

    def close(self) -> StepsFile:
        self._flush()
        self._writer.close()
        return StepsFile(self.path)

    def abort(self) -> None:
        """Close and delete the file (the replay failed)."""
        self._pending = []
        try:
            self._writer.close()
        finally:
            if self.path.exists():
                os.unlink(self.path)
