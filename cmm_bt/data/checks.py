"""Validation helpers shared by the data plugins.

Every check raises :class:`cmm_bt.errors.DataError` with a one-line message naming the file and the
column (``key``) and, where it applies, the first bad row.  Rows are counted from 0 over the data
rows of the file (a CSV header is not a row); line-oriented sources (Binance captures) say
``line N`` counted from 1.

Crossed and locked book rows (the documented rule, applied by every snapshot loader):

* a row whose best bid is *above* its best ask (crossed) is dropped, counted in
  ``MarketData.meta["dropped_crossed_rows"]`` and reported with :func:`warnings.warn`;
* a row whose best bid *equals* its best ask (locked, common around opening auctions and in
  CME pre-open) is kept and counted in ``meta["locked_rows"]``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from cmm_bt.errors import CmmBtError, DataError


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` of a library exception."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Wrap any error raised while reading ``path`` into one-line :class:`DataError`.

    ``what`` names the format (``"parquet"``, ``"gzip"``, ``"CSV"``...).  A :class:`CmmBtError`
    raised inside passes through unchanged.
    """
    try:
        yield
    except CmmBtError:
        raise
    except FileNotFoundError as err:
        raise DataError("file not found", file=path) from err
    except Exception as err:  # noqa: BLE001 - any library error means a corrupted/unreadable file
        raise DataError(f"cannot read {what} file ({one_line(err)})", file=path) from err


def require_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path`, or :class:`DataError` when it does not exist."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", file=p)
    return p


def require_columns(columns: Iterable[str], required: Sequence[str], file: str | Path) -> None:
    """Raise naming every column of ``required`` that ``columns`` lacks."""
    have = set(columns)
    missing = [c for c in required if c not in have]
    if missing:
        raise DataError(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
                        file=file, key=missing[0])


def _first_bad_row(bad: np.ndarray, rows: np.ndarray | None) -> int | None:
    """File row of the first True in ``bad`` (any True across trailing axes), or None."""
    if bad.ndim > 1:
        bad = bad.any(axis=tuple(range(1, bad.ndim)))
    idx = np.flatnonzero(bad)
    if not idx.size:
        return None
    i = int(idx[0])
    return int(rows[i]) if rows is not None else i


def check_monotonic(ts: np.ndarray, file: str | Path, key: str, rows: np.ndarray | None = None,
                    unit: str = "row") -> None:
    """Raise when ``ts`` ever decreases, naming the first bad row.

    :param rows: the file row number of each element of ``ts`` (default: its position).
    :param unit: ``"row"`` or ``"line"``, the word used in the message.
    """
    ts = np.asarray(ts)
    if ts.size < 2:
        return
    row = _first_bad_row(np.concatenate([[False], ts[1:] < ts[:-1]]), rows)
    if row is not None:
        raise DataError(f"timestamps go backwards at {unit} {row}", file=file, key=key)


def check_positive(values: np.ndarray, file: str | Path, key: str, rows: np.ndarray | None = None,
                   allow_empty: bool = False, unit: str = "row") -> None:
    """Raise when a value is ``<= 0`` (or NaN), naming the first bad row.

    :param allow_empty: treat NaN and exactly 0 as "empty level" (allowed); negatives still fail.
    """
    v = np.asarray(values, dtype=np.float64)
    if allow_empty:
        bad = v < 0
    else:
        bad = ~(v > 0)
    row = _first_bad_row(bad, rows)
    if row is not None:
        raise DataError(f"non-positive price at {unit} {row}", file=file, key=key)


def check_finite(values: np.ndarray, file: str | Path, key: str, rows: np.ndarray | None = None) -> None:
    """Raise when a value is NaN or infinite, naming the first bad row."""
    v = np.asarray(values, dtype=np.float64)
    row = _first_bad_row(~np.isfinite(v), rows)
    if row is not None:
        raise DataError(f"missing or non-finite value at row {row}", file=file, key=key)


def map_codes(values: Iterable, codes: Mapping[str, int], file: str | Path, key: str, what: str, expected: str) -> np.ndarray:
    """``values`` as int8 codes through ``codes`` (keys upper case; values stripped and upper-cased);
    raise naming the first unknown value and its row, e.g. ``unknown side 'X' at row 3 (expected B or S)``."""
    text = pd.Series(values).astype(str).str.strip().str.upper()
    mapped = text.map(codes)
    row = _first_bad_row(mapped.isna().to_numpy(), None)
    if row is not None:
        raise DataError(f"unknown {what} {text.iloc[row]!r} at row {row} (expected {expected})", file=file, key=key)
    return mapped.to_numpy(np.int8)


def crossed_locked(best_bid: np.ndarray, best_ask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(crossed, locked)`` of snapshot rows; rows with an empty side are neither."""
    bb = np.asarray(best_bid)
    ba = np.asarray(best_ask)
    both = (bb > 0) & (ba > 0)
    return both & (bb > ba), both & (bb == ba)


def drop_crossed(best_bid: np.ndarray, best_ask: np.ndarray, file: str | Path, meta: dict) -> np.ndarray:
    """Apply the crossed/locked rule: the boolean mask of rows to keep.

    Adds the counts to ``meta["dropped_crossed_rows"]`` and ``meta["locked_rows"]`` (summed over
    several files) and warns when rows are dropped.
    """
    crossed, locked = crossed_locked(best_bid, best_ask)
    n_crossed = int(crossed.sum())
    meta["dropped_crossed_rows"] = int(meta.get("dropped_crossed_rows", 0)) + n_crossed
    meta["locked_rows"] = int(meta.get("locked_rows", 0)) + int(locked.sum())
    if n_crossed:
        first = int(np.flatnonzero(crossed)[0])
        warnings.warn(f"{file}: dropped {n_crossed} crossed book row(s) (best bid > best ask), first at row {first}",
                      stacklevel=2)
    return ~crossed


def to_ticks(prices: np.ndarray, tick_size: float) -> np.ndarray:
    """Prices to integer ticks (``round(price / tick)``); NaN and non-positive become 0 (empty)."""
    p = np.asarray(prices, dtype=np.float64)
    out = np.rint(p / tick_size)
    out[~(p > 0)] = 0
    return out.astype(np.int64)
