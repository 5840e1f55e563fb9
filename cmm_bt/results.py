"""A finished run (:class:`RunResult`) and its folder on disk.

A run folder holds ``config.yaml`` (resolved config), ``metrics.json`` (flat keys, sorted, NaN and
infinities written as ``null``), ``run.json`` (names, split, instrument, counters),
``steps.parquet``, ``fills.parquet``, ``episodes.parquet``, one ``<name>.parquet`` per extra table,
the files of reporters that write any (e.g. the ``plots`` PNGs) and an empty ``complete`` marker.  It is
written into a hidden temporary sibling ``.NAME.tmp-PID`` and renamed into place at the end, so an
interrupted run never leaves a folder that looks complete; leftovers of killed processes are removed by
the next write into the same parent folder (a previous run moved aside as ``.NAME.old-PID`` by a killed
overwrite is put back).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import yaml

from cmm_bt.data.schema import Instrument
from cmm_bt.engine.output import BacktestOutput
from cmm_bt.errors import CmmBtError
from cmm_bt.hostinfo import describe_host
from cmm_bt.storage import remove_dead_temps

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
    :ivar files: extra files (name -> bytes, e.g. a PNG a pipeline product made), written into the run folder.
    :ivar fee_model: the engine's fee model in words (shown in the report header, ``config.yaml`` and
        ``run.json``), e.g. ``proportional: maker 2 bp, taker 5 bp of notional (engine defaults)``.
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
    files: dict[str, bytes] = field(default_factory=dict)
    fee_model: str | None = None


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


_EXISTS = "run folder already exists (pass --overwrite to replace it)"


def check_out_dir(out_dir: Path, *, overwrite: bool = False) -> None:
    """Fail now, before any work, when ``out_dir`` cannot become a run folder: it exists (and
    ``overwrite`` is False) or is not a folder, it is a dangling symbolic link, a parent is a regular
    file, or the nearest existing parent cannot be written to.  Creates nothing.

    :raises CmmBtError: naming ``out_dir`` and what is wrong.
    """
    out_dir = Path(out_dir)
    if os.path.islink(out_dir) and not out_dir.exists():
        raise CmmBtError("is a dangling symbolic link", file=out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise CmmBtError("exists and is not a folder", file=out_dir)
        if not overwrite:
            raise CmmBtError(_EXISTS, file=out_dir)
    parent = Path(os.path.abspath(out_dir)).parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if os.path.islink(parent) and not parent.exists():
        raise CmmBtError(f"cannot create the run folder: {parent} is a dangling symbolic link", file=out_dir)
    if not parent.is_dir():
        raise CmmBtError(f"cannot create the run folder: {parent} is not a folder", file=out_dir)
    try:  # the only reliable test (ACLs, read-only mounts, root): write something
        fd, probe = tempfile.mkstemp(prefix=".cmm-bt-write-test-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CmmBtError(f"cannot write into {parent} ({err.strerror or type(err).__name__})", file=out_dir) from None


def steps_spool(out_dir: Path) -> Path:
    """Where a run bound for ``out_dir`` writes its steps while it replays (``run_backtest(steps_to=...)``):
    a temporary sibling ``.NAME.steps.tmp-PID`` (its parent created), moved into the folder by
    :func:`write_run_folder`; a killed process's is removed by the next write into the same parent."""
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CmmBtError(f"cannot create the run folder ({err.strerror or type(err).__name__})", file=out_dir) from None
    return out_dir.parent / f".{out_dir.name}.steps.tmp-{os.getpid()}"


#: ``writer(folder)`` adds files to a run folder while it is still the temporary one.
FolderWriter = Callable[[Path], None]


def write_run_folder(result: RunResult, out_dir: Path, *, overwrite: bool = False,
                     writers: Iterable[FolderWriter] = ()) -> Path:
    """Write ``result`` to ``out_dir`` atomically; set and return ``result.run_dir``.

    :param writers: called with the temporary folder after the tables and before the ``complete``
        marker (reporters' files such as PNG plots), so they are inside the folder once it appears.
    :raises CmmBtError: ``out_dir`` exists and ``overwrite`` is False, an extra table has a bad name, or
        the folder cannot be written (the error names it).
    """
    out_dir = Path(out_dir)
    for name in result.extra:
        if not _TABLE_NAME.match(name) or name in CORE_TABLES or name in ("config", "metrics", "run"):
            raise CmmBtError(f"bad extra table name {name!r} (letters, digits, _.- only; not a core table)", file=out_dir)
    try:
        remove_dead_temps(out_dir.parent, restore_old=True)  # leftovers of killed runs; a lost old run comes back
        if os.path.lexists(out_dir) and not overwrite:
            raise CmmBtError(_EXISTS, file=out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as err:
        raise CmmBtError(f"cannot write the run folder ({err.strerror or type(err).__name__})", file=out_dir) from None
    try:
        with open(tmp / "config.yaml", "w", encoding="utf-8") as f:
            f.write(_config_header(result))
            yaml.safe_dump(to_plain(result.config), f, sort_keys=False, allow_unicode=True)
        (tmp / "metrics.json").write_text(metrics_json(result.metrics), encoding="utf-8")
        (tmp / "run.json").write_text(json.dumps(_run_info(result), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        out = result.output
        if out.steps_file is not None:  # written during the replay (:func:`steps_spool`)
            out.steps_file.move_to(tmp / "steps.parquet")
        else:
            write_table(out.steps, tmp / "steps.parquet")
        write_table(out.fills, tmp / "fills.parquet")
        write_table(out.episodes, tmp / "episodes.parquet")
        for name, df in result.extra.items():
            write_table(df, tmp / f"{name}.parquet")
        for name, data in result.files.items():
            if not _TABLE_NAME.match(name) or name.endswith(".parquet") or name in ("config.yaml", "metrics.json", "run.json", COMPLETE_MARKER):
                raise CmmBtError(f"bad extra file name {name!r} (letters, digits, _.- only; no .parquet, not a file the run writes)", file=out_dir)
            (tmp / name).write_bytes(data)
        for writer in writers:
            writer(tmp)
        (tmp / COMPLETE_MARKER).touch()
        _move_into_place(tmp, out_dir, overwrite)
        if out.steps_file is not None:
            out.steps_file.now_at(out_dir / "steps.parquet")
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise CmmBtError(f"cannot write the run folder ({err.strerror or type(err).__name__})", file=out_dir) from None
        raise
    result.run_dir = out_dir
    return out_dir


def _config_header(result: RunResult) -> str:
    """Comment lines at the top of ``config.yaml``: what the file is and the fee model that applied."""
    lines = ["# The resolved configuration of this run (every engine setting, defaults included)."]
    if result.fee_model:
        lines.append(f"# Fees: {result.fee_model}")
    return "".join(f"{line}\n" for line in lines)


def _move_into_place(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if not os.path.lexists(out_dir):
        os.rename(tmp, out_dir)
        return
    if not overwrite:
        raise CmmBtError(_EXISTS, file=out_dir)
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
            "instrument": asdict(inst),
            "counters": dict(result.output.counters),
            "wall_s": float(result.output.wall_s),
            "extra_tables": sorted(result.extra),
            "fee_model": result.fee_model,
            "host": describe_host(),  # latency and energy metrics depend on it
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
        fee_model=info.get("fee_model"),
    )
