"""A sweep's records and files: ``sweep.json``, ``sweep.md``, ``sweep.parquet`` and ``best.yaml``.

Every file is written to a temporary sibling and renamed into place (:func:`cmm_bt.storage.atomic_write`).
``sweep.json`` is rewritten after each finished trial, so an interrupted sweep keeps what it did.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cmm_bt.config.loader import apply_overrides
from cmm_bt.results import COMPLETE_MARKER, to_plain
from cmm_bt.storage import atomic_write
from cmm_bt.sweep.space import canonical

SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
SWEEP_PARQUET = "sweep.parquet"
BEST_YAML = "best.yaml"
TRIALS = "trials"
FORMAT_VERSION = 1
#: Metrics shown in ``sweep.md`` besides the sweep's own.
TABLE_METRICS = ("epnl", "map", "pnl_map", "sharpe", "max_drawdown", "fills")


def trial_key(point: dict[str, Any]) -> str:
    """A stable hash of a point's parameters (the same point gives the same key on every run)."""
    return hashlib.sha256(canonical(point).encode()).hexdigest()[:10]


def trial_name(point: dict[str, Any]) -> str:
    """``<last key part>-<value>_...-<hash>``: readable, file-system safe, unique by the hash."""
    parts = []
    for key, value in point.items():
        text = value if isinstance(value, str) else canonical(value)
        parts.append(f"{key.rsplit('.', 1)[-1]}-{text}")
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", "_".join(parts)).strip("._")[:60]
    return f"{slug}-{trial_key(point)}" if slug else trial_key(point)


@dataclass
class TrialRecord:
    """One trial as listed in ``sweep.json``.

    :ivar status: ``ok``, ``failed`` (``error`` says why) or ``pending`` (not run yet / interrupted).
    :ivar reused: found complete in the output folder by this run of the sweep (not run again).
    :ivar attempts: how many times it was started (more than 1 when its worker died and it was retried).
    """

    name: str
    key: str
    params: dict[str, Any]
    overrides: list[str]
    status: str = "pending"
    error: str | None = None
    value: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    reused: bool = False
    attempts: int | None = None
    worker: str | None = None
    wall_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = {k: _finite_or_none(v) for k, v in to_plain(self.metrics).items()}
        out["value"] = _finite_or_none(self.value)
        return to_plain(out)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrialRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def metric_value(metrics: dict[str, Any], metric: str) -> float | None:
    v = metrics.get(metric)
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of a run folder (``null`` back to NaN)."""
    data = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
    return {k: (math.nan if v is None else v) for k, v in data.items()}


def is_complete(run_dir: str | Path | None) -> bool:
    return bool(run_dir) and (Path(run_dir) / COMPLETE_MARKER).is_file() and (Path(run_dir) / "metrics.json").is_file()


def ranked(records: list[TrialRecord], direction: str) -> list[TrialRecord]:
    """Trials with a value first, best first (ties in trial order); then the rest in trial order."""
    scored = [r for r in records if r.status == "ok" and r.value is not None]
    rest = [r for r in records if r not in scored]
    sign = -1.0 if direction == "max" else 1.0
    order = {id(r): i for i, r in enumerate(records)}
    scored.sort(key=lambda r: (sign * r.value, order[id(r)]))
    return scored + rest


def best_record(records: list[TrialRecord], direction: str) -> TrialRecord | None:
    top = ranked(records, direction)
    return top[0] if top and top[0].status == "ok" and top[0].value is not None else None


# ----------------------------------------------------------------------------------- sweep.json
def load_sweep(out: Path) -> dict[str, Any] | None:
    path = Path(out) / SWEEP_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a damaged listing: every trial is run again (its folder is replaced)


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(to_plain(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------- tables
def short_names(keys: list[str]) -> dict[str, str]:
    """Each key's shortest unique dotted suffix (``execution.params.gamma`` -> ``gamma``)."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for k in keys if k == cand or k.endswith("." + cand)) == 1:
                out[key] = cand
                break
        else:
            out[key] = key
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v) if isinstance(v, str) else canonical(v)


def table_columns(metric: str) -> list[str]:
    return [metric, *(m for m in TABLE_METRICS if m != metric)]


def markdown_table(records: list[TrialRecord], keys: list[str], metric: str, direction: str) -> str:
    names = short_names(keys)
    metrics = table_columns(metric)
    head = ["#", *(names[k] for k in keys), *(f"**{m}**" if m == metric else m for m in metrics), "status", "trial"]
    align = ["---:"] * (len(head) - 2) + [":---", ":---"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for rank, r in enumerate(ranked(records, direction), 1):
        status = r.status + (" (reused)" if r.reused else "") + (f" ({r.attempts} attempts)" if (r.attempts or 0) > 1 else "")
        if r.status == "failed" and r.error:
            status += f": {r.error[:80]}"
        row = [str(rank), *(_cell(r.params.get(k)) for k in keys), *(_cell(r.metrics.get(m)) for m in metrics), status, r.name]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"


def write_parquet(path: Path, records: list[TrialRecord], keys: list[str], metric: str, direction: str) -> None:
    import pandas as pd

    rows = []
    for rank, r in enumerate(ranked(records, direction), 1):
        row: dict[str, Any] = {"rank": rank, "trial": r.name, "status": r.status, "reused": r.reused, "attempts": r.attempts}
        row.update({k: r.params.get(k) for k in keys})
        row["value"] = r.value
        for m, v in r.metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[f"metric.{m}"] = float(v)
        row.update(run_dir=r.run_dir, error=r.error, wall_s=r.wall_s)
        rows.append(row)
    df = pd.DataFrame(rows)
    for k in keys:  # a column of mixed types (numbers and text) is written as text
        if k in df and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in df[k].dropna()):
            df[k] = [None if v is None else (v if isinstance(v, str) else canonical(v)) for v in df[k]]
    for col in ("attempts", "value", "wall_s"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    with atomic_write(path) as tmp:
        df.to_parquet(tmp, index=False)


# ----------------------------------------------------------------------------------- best.yaml
def best_yaml_text(
    out: Path, strategy: Path, *, dataset: str | None, base_overrides: list[str], best: TrialRecord, overrides: list[str], header: list[str]
) -> str:
    """A strategy file that ``extends`` the original with the base and winning overrides (not the split)."""
    out = Path(out).resolve()
    strategy = Path(strategy).resolve()
    try:  # relative when both live under one project folder (the sweep folder can move with it)
        common = os.path.commonpath([out, strategy])
        shallow = common == Path(common).anchor or Path(common) == Path.home()
        parent = str(strategy) if shallow else os.path.relpath(strategy, out)
    except ValueError:  # another drive
        parent = str(strategy)
    doc: dict[str, Any] = {"extends": parent}
    if dataset is not None:
        doc["dataset"] = dataset
    doc = apply_overrides(doc, [*base_overrides, *overrides])
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(to_plain(doc), sort_keys=False, allow_unicode=True)
