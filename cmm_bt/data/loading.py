"""Load a dataset through its data plugin, with a parquet cache of the normalised events."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

import cmm_bt
from cmm_bt.data.manifest import DatasetManifest
from cmm_bt.data.schema import EVENT_COLUMNS, Instrument, MarketData
from cmm_bt.errors import DataError
from cmm_bt.registry import Registry
from cmm_bt.storage import atomic_write


def default_cache_dir() -> Path:
    """``$CMM_BT_CACHE_DIR``, else ``.cache/cmm-bt`` under the working directory."""
    return Path(os.environ.get("CMM_BT_CACHE_DIR") or Path.cwd() / ".cache" / "cmm-bt").resolve()


def resolve_files(manifest: DatasetManifest, data_root: Path) -> list[Path]:
    """Absolute data files; a missing one is a :class:`DataError` that says how to set the data root."""
    files = [data_root / f for f in manifest.files]
    for rel, path in zip(manifest.files, files):
        if not path.is_file():
            raise DataError(
                f"data file not found: {rel} under data root {data_root} (set --data-root or CMM_BT_DATA_ROOT)",
                file=manifest.path,
                key="files",
            )
    return files


def _cache_key(manifest: DatasetManifest, files: list[Path], plugin_version: str) -> str:
    h = hashlib.sha256()
    h.update(manifest.model_dump_json(exclude={"path", "description", "split"}).encode())
    h.update(f"{cmm_bt.__version__}|{plugin_version}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_market(manifest: DatasetManifest, data_root: Path, registry: Registry, cache_dir: Path | None = None) -> MarketData:
    """The dataset's normalised events, from the cache when its inputs have not changed."""
    files = resolve_files(manifest, data_root)
    source_cls = registry.get("data", manifest.source, where=str(manifest.path), key="source")
    version = getattr(source_cls, "version", "0")
    cache = (cache_dir or default_cache_dir()) / "data"
    stem = f"{manifest.name}-{_cache_key(manifest, files, str(version))}"
    events_path, meta_path = cache / f"{stem}.parquet", cache / f"{stem}.json"
    if events_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        events = pd.read_parquet(events_path)
        return MarketData(events, Instrument(**meta["instrument"]), [tuple(s) for s in meta["sessions"]], meta["meta"])

    source = registry.create("data", manifest.source, manifest.params, where=str(manifest.path), key="params")
    instrument = manifest.instrument.build() if manifest.instrument else None
    market = source.load(files, instrument, data_root)
    check_market(market, manifest)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_write(events_path) as tmp:
        market.events.to_parquet(tmp, index=False)
    meta = {"instrument": asdict(market.instrument), "sessions": market.sessions, "meta": _jsonable(market.meta)}
    with atomic_write(meta_path) as tmp:
        tmp.write_text(json.dumps(meta))
    return market


def check_market(market: MarketData, manifest: DatasetManifest) -> None:
    """The plugin kept the schema contract (columns, dtypes, sorted, non-empty)."""
    ev = market.events
    if list(ev.columns) != list(EVENT_COLUMNS) or any(str(ev[c].dtype) != t for c, t in EVENT_COLUMNS.items()):
        raise DataError(f"data plugin {manifest.source!r} returned columns {dict(ev.dtypes.astype(str))}, expected {EVENT_COLUMNS}", file=manifest.path)
    if ev.empty:
        raise DataError("no market events after loading (all rows filtered out?)", file=manifest.path)
    if not ev["exch_ts"].is_monotonic_increasing:
        raise DataError(f"data plugin {manifest.source!r} returned events not sorted by exch_ts", file=manifest.path)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
