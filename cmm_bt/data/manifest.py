"""Dataset manifests (``datasets/NAME.yaml``) and the data root they are relative to."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator

from cmm_bt.config.errors import render_validation_error
from cmm_bt.config.yamlio import read_yaml_mapping
from cmm_bt.data.schema import Instrument
from cmm_bt.errors import ConfigError

#: A dataset name: it becomes part of cache file names.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
#: Where bundled manifests live (the project's ``datasets/`` folder).
PROJECT_DATASETS = Path(__file__).resolve().parents[2] / "datasets"


class InstrumentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    tick_size: PositiveFloat
    multiplier: PositiveFloat = 1.0
    lot_size: PositiveFloat = 1.0
    currency: str = Field("USD", description="What PnL, cash and fees are counted in (the coin for inverse contracts).")
    contract: Literal["linear", "inverse"] = Field(
        "linear", description="'inverse': coin-margined, one contract = `multiplier` in the quote currency, PnL in "
        "`currency` (e.g. Binance COIN-M BTCUSD_PERP: multiplier 100, currency BTC).")

    def build(self) -> Instrument:
        return Instrument(self.symbol, self.tick_size, self.multiplier, self.lot_size, self.currency, self.contract)


class SplitSpec(BaseModel):
    """Train = data start .. validation_start; validation .. test_start; test .. data end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    validation_start: datetime
    test_start: datetime


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Dataset name (usually the file stem).")
    description: str = ""
    source: str = Field(description="Registered data plugin (kind `data`).")
    files: list[str] = Field(default_factory=list, description="Data files, relative to the data root.")
    params: dict[str, Any] = Field(default_factory=dict, description="Options of the data plugin.")
    instrument: InstrumentSpec | None = None
    split: SplitSpec | None = None
    engine_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine settings that suit this market (e.g. order_qty, position_limit in its units); "
        "a strategy file or -o override that sets the same key wins.",
    )
    path: Path | None = Field(default=None, exclude=True, description="Where the manifest was read from.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # the name becomes part of cache file names: no folders, no '..', nothing hidden
        if not PLAIN_NAME.fullmatch(v):
            raise ValueError("must be a plain name (letters, digits and _ . + -, starting with a letter or digit, "
                             "at most 100 characters; no '/' or '..')")
        return v


#: Environment variable that lets manifests name files outside the data root (``--allow-external-files``).
ALLOW_EXTERNAL_ENV = "CMM_BT_ALLOW_EXTERNAL_FILES"


def external_files_allowed() -> bool:
    """True when ``$CMM_BT_ALLOW_EXTERNAL_FILES`` is set to 1 / true / yes (``--allow-external-files`` sets it)."""
    return os.environ.get(ALLOW_EXTERNAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_under_root(rel: str, *, file: str | Path | None, key: str, allow_external: bool | None = None) -> None:
    """A path a manifest or plugin parameter names must stay under the data root: relative, no ``..``.

    Symbolic links inside the data root are the user's own choice and are followed.  With
    ``allow_external`` (default: :func:`external_files_allowed`) any path is accepted.
    """
    if allow_external is None:
        allow_external = external_files_allowed()
    if allow_external:
        return
    text = str(rel).replace("\\", "/")
    if text.startswith("/") or PurePath(rel).is_absolute() or PureWindowsPath(text).drive or ".." in text.split("/"):
        raise ConfigError(f"{rel!r} is outside the data root (absolute or with '..'); files are relative to the "
                          f"data root unless you pass --allow-external-files (or set {ALLOW_EXTERNAL_ENV}=1)",
                          file=file, key=key)


def resolve_data_root(cli_value: str | Path | None = None) -> Path:
    """``--data-root``, else ``$CMM_BT_DATA_ROOT``, else ``datasets/`` (relative to the working directory)."""
    value = cli_value or os.environ.get("CMM_BT_DATA_ROOT") or "datasets"
    return Path(value).expanduser().resolve()


def find_manifest(name_or_path: str, *, strategy_dir: Path | None = None) -> Path:
    """A manifest path from a name (``datasets/NAME.yaml`` here or in the project) or a file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        for base in filter(None, (Path.cwd(), strategy_dir)):
            if (base / candidate).is_file():
                return (base / candidate).resolve()
        raise ConfigError("dataset manifest not found", file=name_or_path)
    searched = [Path.cwd() / "datasets", PROJECT_DATASETS]
    for folder in searched:
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path.resolve()
    known = sorted({p.stem for f in searched if f.is_dir() for p in f.glob("*.yaml")})
    import difflib

    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown dataset {name_or_path!r}{hint} (known: {', '.join(known)})", key="dataset")


def load_manifest(name_or_path: str, *, strategy_dir: Path | None = None) -> DatasetManifest:
    path = find_manifest(name_or_path, strategy_dir=strategy_dir)
    data = read_yaml_mapping(path)
    try:
        return DatasetManifest(**data, path=path)
    except ValidationError as err:
        raise ConfigError(render_validation_error(err), file=path) from None


def to_ns(moment: datetime) -> int:
    """A datetime as ns since the epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000) * 1000


def compute_splits(manifest: DatasetManifest, start_ns: int, end_ns: int) -> dict[str, tuple[int, int]]:
    """``train`` / ``validation`` / ``test`` / ``all`` as ``(start_ns, end_ns)`` with end exclusive."""
    end = end_ns + 1
    splits = {"all": (start_ns, end)}
    if manifest.split is None:
        splits.update(train=(start_ns, end), validation=(start_ns, end), test=(start_ns, end))
        return splits
    v, t = to_ns(manifest.split.validation_start), to_ns(manifest.split.test_start)
    if not start_ns < v < t < end:
        raise ConfigError(
            "split boundaries must satisfy data start < validation_start < test_start < data end "
            f"(data spans {_iso(start_ns)} .. {_iso(end_ns)})",
            file=manifest.path,
            key="split",
        )
    splits.update(train=(start_ns, v), validation=(v, t), test=(t, end))
    return splits


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")
