"""A finished run (:class:`RunResult`) and its folder on disk.

A run folder holds ``config.yaml`` (resolved config), ``metrics.json`` (flat keys, sorted, NaN and
infinities written as ``null``), ``run.json`` (names, split, instrument, counters),
``steps.parquet``, ``fills.parquet``, ``episodes.parquet``, one ``<name>.parquet`` per extra table
and an empty ``complete`` marker.  It is written into a hidden temporary sibling and renamed into
place at the end, so an interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import BacktestOutput
from cmm_bt.errors import CmmBtError

#: File names of the core tables; extra tables may not reuse them.
CORE_TABLES: tuple[str, ...] = ("steps", "fills", "episodes")
COMPLETE_MARKER = "complete"
_TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class RunResult:
    """Everything a run produced.

    :ivar run_name: run name.
    :ivar strategy_name: strategy name (column header in ``compare``).
    :ivar dataset_name: dataset name.
    :ivar config: the resolved strategy config (plain YAML-able dict).
    :ivar metrics: flat metrics (see :func:`cmm_bt.metrics.compute_metrics`).
    :ivar output: the engine's tables.
    :ivar extra: extra tables from plugins (e.g. ``prediction_quality``), written as parquet.
    :ivar run_dir: the run folder once written, else None.
    :ivar split: the data split replayed (``test``, ...), if any.
    :ivar quiet_tables: extra tables written to the run folder but not printed by generic reporters
        (a plugin renders them itself in a report section).
    """

    run_name: str
    strategy_name: str
    dataset_name: str
    config: dict[str, Any]
    metrics: dict[str, float | int]
    output: BacktestOutput
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    run_dir: Path | None = None
    split: str | None = None
    quiet_tables: set[str] = field(default_factory=set)


def default_run_dir(strategy_name: str, dataset_name: str, root: Path = Path("runs"), *, now: datetime | None = None) -> Path:
    """``root/<strategy>-<dataset>-<YYYYmmdd-HHMMSS>`` (local time), names made file-system safe.

    A name already taken (two runs within one second) gets a ``-2``, ``-3`` ... suffix.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{_safe(strategy_name)}-{_safe(dataset_name)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "run"


# ---------------------------------------------------------------------------------- writing
def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write one table as parquet (module-level so tests can make it fail)."""
    df.reset_index(drop=True).to_parquet(path, index=False)


def write_run_folder(result: RunResult, out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write ``result`` to ``out_dir`` atomically; set and return ``result.run_dir``.

    :raises CmmBtError: ``out_dir`` exists and ``overwrite`` is False, or an extra table has a bad name.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise CmmBtError("run folder already exists (pass overwrite to replace it)", file=out_dir)
    for name in result.extra:
        if not _TABLE_NAME.match(name) or name in CORE_TABLES or name in ("config", "metrics", "run"):
            raise CmmBtError(f"bad extra table name {name!r} (letters, digits, _.- only; not a core table)", file=out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with open(tmp / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(to_plain(result.config), f, sort_keys=False, allow_unicode=True)
        (tmp / "metrics.json").write_text(metrics_json(result.metrics), encoding="utf-8")
        (tmp / "run.json").write_text(json.dumps(_run_info(result), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        out = result.output
        write_table(out.steps, tmp / "steps.parquet")
        write_table(out.fills, tmp / "fills.parquet")
        write_table(out.episodes, tmp / "episodes.parquet")
        for name, df in result.extra.items():
            write_table(df, tmp / f"{name}.parquet")
        (tmp / COMPLETE_MARKER).touch()
        _move_into_place(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.run_dir = out_dir
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    if not overwrite:
        raise CmmBtError("run folder already exists (pass overwrite to replace it)", file=out_dir)
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)  # put the previous run back
        raise
    shutil.rmtree(old, ignore_errors=True)


def metrics_json(metrics: dict[str, Any]) -> str:
    """Sorted, indented JSON with plain numbers; NaN and infinities become ``null``."""
    return json.dumps({k: _json_number(v) for k, v in metrics.items()}, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _json_number(v: Any) -> Any:
    v = to_plain(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_plain(obj: Any) -> Any:
    """Recursively turn numpy scalars, Paths, tuples and sets into plain YAML/JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):  # pydantic models
        return to_plain(obj.model_dump())
    return obj


def _run_info(result: RunResult) -> dict[str, Any]:
    inst = result.output.instrument
    return to_plain(
        {
            "name": result.run_name,
            "strategy": result.strategy_name,
            "dataset": result.dataset_name,
            "split": result.split,
            "instrument": {
                "symbol": inst.symbol,
                "tick_size": inst.tick_size,
                "multiplier": inst.multiplier,
                "lot_size": inst.lot_size,
                "currency": inst.currency,
            },
            "counters": dict(result.output.counters),
            "wall_s": float(result.output.wall_s),
            "extra_tables": sorted(result.extra),
        }
    )


# ---------------------------------------------------------------------------------- reading
def load_run_folder(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, pd.DataFrame]]:
    """``(config, metrics, tables)`` of a complete run folder; tables by file stem.

    :raises CmmBtError: the folder is missing or incomplete (no ``complete`` marker).
    """
    path = Path(path)
    if not path.is_dir():
        raise CmmBtError("run folder not found", file=path)
    if not (path / COMPLETE_MARKER).exists():
        raise CmmBtError("run folder is incomplete (no 'complete' marker)", file=path)
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise CmmBtError(f"cannot read run folder: {err}", file=path) from None
    metrics = {k: (math.nan if v is None else v) for k, v in metrics.items()}
    tables = {p.stem: pd.read_parquet(p) for p in sorted(path.glob("*.parquet"))}
    return config, metrics, tables


def read_run_result(path: Path) -> RunResult:
    """Rebuild a :class:`RunResult` from a run folder (for ``compare`` and reports)."""
    path = Path(path)
    config, metrics, tables = load_run_folder(path)
    info_path = path / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    inst = info.get("instrument") or {"symbol": "?", "tick_size": 1.0}
    output = BacktestOutput(
        instrument=Instrument(**inst),
        steps=tables.pop("steps", pd.DataFrame()),
        fills=tables.pop("fills", pd.DataFrame()),
        episodes=tables.pop("episodes", pd.DataFrame()),
        counters=dict(info.get("counters") or {}),
        wall_s=float(info.get("wall_s") or 0.0),
    )
    return RunResult(
        run_name=info.get("name", path.name),
        strategy_name=info.get("strategy", "?"),
        dataset_name=info.get("dataset", "?"),
        config=config,
        metrics=metrics,
        output=output,
        extra=tables,
        run_dir=path,
        split=info.get("split"),
    )
