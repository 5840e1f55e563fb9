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


#: Longest library message (and echoed value) quoted in an error: a file that is not what it should be
#: must not be printed back to the terminal.
MAX_QUOTED = 160
#: Largest price in ticks (2**52: exact in float64, far from int64 overflow in the engine's arithmetic).
MAX_TICKS = 2**52
#: Quantities above this are taken as corrupted (2**53: the largest integer a float64 holds exactly).
MAX_QTY = 2.0**53
#: Prices more than this many ticks off the tick grid count as off-grid (float noise is far smaller).
GRID_TOLERANCE = 1e-4
#: A file whose share of off-grid prices is above this fails (below it: a one-line warning).
MAX_OFF_GRID_FRACTION = 0.01


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` shortened to ``limit`` characters (with an ellipsis)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` of a library exception (at most :data:`MAX_QUOTED` characters)."""
    text = str(err).strip().splitlines()
    return clip(f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": "))


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


def _at(bad: np.ndarray, rows: np.ndarray | None, unit: str, columns: Sequence[str] | None) -> str | None:
    """``"row R"`` of the first True of ``bad`` (``"row R (COLUMN)"`` for a 2-D mask with ``columns``), or None."""
    row = _first_bad_row(bad, rows)
    if row is None:
        return None
    if bad.ndim == 2 and columns is not None:
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        return f"{unit} {row} ({columns[int(np.flatnonzero(bad[i])[0])]})"
    return f"{unit} {row}"


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


_QUANTITY_WORDS = ("qty", "quantity", "volume", "size", "amount")


def _what(key: str) -> str:
    """The word for a column in messages: its name for quantity-like columns, else ``price``."""
    return key if any(w in key.lower() for w in _QUANTITY_WORDS) else "price"


def check_positive(values: np.ndarray, file: str | Path, key: str, rows: np.ndarray | None = None,
                   allow_empty: bool = False, unit: str = "row", what: str | None = None,
                   columns: Sequence[str] | None = None) -> None:
    """Raise when a value is ``<= 0`` (or NaN), naming the first bad row.

    :param allow_empty: treat NaN and exactly 0 as "empty level" (allowed); negatives still fail.
    :param what: the word in the message (default: ``price`` for price columns, else ``key``).
    :param columns: names of the columns of a 2-D ``values`` (the message names the bad one).
    """
    v = np.asarray(values, dtype=np.float64)
    if allow_empty:
        bad = v < 0
    else:
        bad = ~(v > 0)
    at = _at(bad, rows, unit, columns)
    if at is not None:
        raise DataError(f"non-positive {what or _what(key)} at {at}", file=file, key=key)


def check_quantity(qty: np.ndarray, file: str | Path, key: str, *, present: np.ndarray | None = None,
                   rows: np.ndarray | None = None, unit: str = "row", positive: bool = False,
                   columns: Sequence[str] | None = None) -> None:
    """Raise when a quantity is negative, or missing / non-finite / absurdly large where it counts.

    :param present: mask of the values that must be numbers (book levels that have a price); elsewhere
        (empty levels) NaN is allowed.  Default: all of them.
    :param positive: also reject 0 (trade quantities).
    :param columns: names of the columns of a 2-D ``qty`` (the message names the bad one).
    """
    q = np.asarray(qty, dtype=np.float64)
    must = np.ones(q.shape, bool) if present is None else np.asarray(present, bool)
    at = _at(q < 0, rows, unit, columns)
    if at is not None:
        raise DataError(f"negative quantity at {at}", file=file, key=key)
    at = _at(must & ~(np.isfinite(q) & (q <= MAX_QTY)), rows, unit, columns)
    if at is not None:
        raise DataError(f"missing, non-finite or out-of-range quantity at {at}", file=file, key=key)
    if positive:
        at = _at(must & ~(q > 0), rows, unit, columns)
        if at is not None:
            raise DataError(f"non-positive quantity at {at}", file=file, key=key)


def numeric(df: pd.DataFrame, columns: Sequence[str], file: str | Path) -> np.ndarray:
    """``df[columns]`` as float64 (2-D for several columns, 1-D for one); a value that is not a number is a
    :class:`DataError` naming the column and row (the value itself is not echoed)."""
    out = []
    for c in columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            out.append(col.to_numpy(np.float64))
            continue
        conv = pd.to_numeric(col, errors="coerce")
        bad = conv.isna().to_numpy() & col.notna().to_numpy()
        if bad.any():
            raise DataError(f"non-numeric value at row {int(np.flatnonzero(bad)[0])}", file=file, key=str(c))
        out.append(conv.to_numpy(np.float64))
    return out[0] if len(out) == 1 else np.column_stack(out) if out else np.zeros((len(df), 0))


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
        raise DataError(f"unknown {what} {clip(text.iloc[row], 24)!r} at row {row} (expected {expected})", file=file,
                        key=key)
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


def to_ticks(prices: np.ndarray, tick_size: float, *, file: str | Path | None = None, key: str = "price",
             rows: np.ndarray | None = None, unit: str = "row", on_grid: bool = True,
             max_off_grid: float = MAX_OFF_GRID_FRACTION, columns: Sequence[str] | None = None,
             what: str | None = None) -> np.ndarray:
    """Prices to integer ticks (``round(price / tick)``); NaN and non-positive become 0 (empty).

    An infinite price or one beyond :data:`MAX_TICKS` ticks is a :class:`DataError` naming the first bad
    row (never a wrapped-around int64).  With ``on_grid`` (prices that should be multiples of the tick,
    i.e. all but computed ones such as VWAPs) prices more than :data:`GRID_TOLERANCE` ticks off the grid
    are counted: any gives a one-line warning with their share, a share above ``max_off_grid`` is a
    :class:`DataError` (the tick size does not match the data).
    """
    p = np.asarray(prices, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = p / tick_size
    live = p > 0
    at = _at(live & ~(np.abs(r) <= MAX_TICKS), rows, unit, columns)  # inf, or too large for int64 ticks
    if at is not None:
        raise DataError(f"{what or _what(key)} out of range at {at} (more than 2**52 ticks of {tick_size:g}, "
                        "or infinite)", file=file, key=key)
    out = np.rint(r)
    out[~live] = 0
    if on_grid and live.any():
        off = live & (np.abs(r - out) > GRID_TOLERANCE)
        n_off = int(off.sum())
        if n_off:
            share = n_off / int(live.sum())
            msg = (f"{n_off} of {int(live.sum())} {_what(key)}s ({share:.2%}) are not multiples of the tick size "
                   f"{tick_size:g} (first at {_at(off, rows, unit, columns)})")
            if share > max_off_grid:
                raise DataError(f"{msg}: the tick size does not match the data (set the manifest instrument's "
                                "tick_size or params.tick_size)", file=file, key=key)
            where = f"{file}: {key}: " if file is not None else ""
            warnings.warn(f"{where}{msg}; they are rounded to the nearest tick", stacklevel=2)
    return out.astype(np.int64)
