"""Load a dataset through its data plugin, with a checked parquet cache of the normalised events."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

import cmm_bt
from cmm_bt.data.checks import MAX_TICKS, one_line
from cmm_bt.data.manifest import ALLOW_EXTERNAL_ENV, DatasetManifest, check_under_root, external_files_allowed
from cmm_bt.components import SourcePart
from cmm_bt.data.schema import ASK, BID, BOOK, CLEAR, EVENT_COLUMNS, TRADE, Instrument, MarketData
from cmm_bt.data.stored import ROW_GROUP_ROWS, StoredMarket, StoredPart
from cmm_bt.errors import DataError
from cmm_bt.registry import Registry
from cmm_bt.storage import atomic_write, remove_dead_temps

__all__ = ["ALLOW_EXTERNAL_ENV", "CACHE_FORMAT", "check_market", "check_under_root", "default_cache_dir",
           "external_files_allowed", "load_market", "resolve_files"]


def default_cache_dir() -> Path:
    """``$CMM_BT_CACHE_DIR``, else ``.cache/cmm-bt`` under the working directory."""
    return Path(os.environ.get("CMM_BT_CACHE_DIR") or Path.cwd() / ".cache" / "cmm-bt").resolve()


#: Version of the cache entry layout (``.parquet`` + ``.json`` with checksum and row count; 3: the
#: instrument records its contract type; 4: one entry per source part, row groups indexed).
CACHE_FORMAT = 4


def resolve_files(manifest: DatasetManifest, data_root: Path, *, allow_external: bool | None = None) -> list[Path]:
    """Absolute data files; a missing one is a :class:`DataError` that says how to set the data root.

    Files must lie under the data root (:func:`check_under_root`) unless ``allow_external``.
    """
    for i, rel in enumerate(manifest.files):
        check_under_root(rel, file=manifest.path, key=f"files.{i}", allow_external=allow_external)
    files = [data_root / f for f in manifest.files]
    for rel, path in zip(manifest.files, files):
        if not path.is_file():
            raise DataError(
                f"data file not found: {rel} under data root {data_root} (set --data-root or CMM_BT_DATA_ROOT)",
                file=manifest.path,
                key="files",
            )
    return files


def _part_key(manifest: DatasetManifest, part: SourcePart, plugin_version: str) -> str:
    h = hashlib.sha256()
    h.update(manifest.model_dump_json(exclude={"path", "description", "split", "files"}).encode())
    h.update(f"{cmm_bt.__version__}|{plugin_version}|{part.key}".encode())
    for f in part.files:
        st = f.stat()
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_cached(events_path: Path, meta_path: Path) -> tuple[tuple[StoredPart, dict] | None, str | None]:
    """``((part, index), None)`` for a sound cache entry; ``(None, None)`` when there is none;
    ``(None, reason)`` when it is damaged (truncated, emptied, altered, half written or of an older layout).
    The parquet file is checked against its size and checksum, its row count and columns against the
    index, without reading the events."""
    import pyarrow.parquet as pq

    if not meta_path.exists() and not events_path.exists():
        return None, None
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            return None, "written by another version of cmm-bt"
        info = meta["events"]
        size = events_path.stat().st_size
        if size != info["bytes"]:
            return None, f"parquet file has {size} bytes, the index says {info['bytes']}"
        if _sha256(events_path) != info["sha256"]:
            return None, "parquet file does not match its checksum"
        md = pq.read_metadata(events_path)
        if md.num_rows != info["rows"] or md.num_row_groups != len(info["groups"]):
            return None, f"parquet file has {md.num_rows} rows, the index says {info['rows']}"
        if md.schema.to_arrow_schema() != _schema():
            return None, "parquet file does not have the event columns"
        part = StoredPart(events_path, info["sha256"], tuple(tuple(int(x) for x in g) for g in info["groups"]))
        Instrument(**meta["instrument"])
    except FileNotFoundError as err:
        return None, f"{Path(err.filename or '').name or 'a file'} is missing"
    except Exception as err:  # noqa: BLE001 - any damage to the entry means: rebuild it
        return None, f"unreadable ({one_line(err)})"
    for message in meta.get("warnings", []):  # what loading the source said, said again
        warnings.warn(str(message), stacklevel=4)
    return (part, meta), None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock (``fcntl``) on ``path``: one process builds a cache entry, others wait for it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _schema():
    import pyarrow as pa

    return pa.schema([(c, pa.from_numpy_dtype(np.dtype(t))) for c, t in EVENT_COLUMNS.items()])


def _write_events(events: pd.DataFrame, path: Path) -> dict:
    """The events as parquet row groups of :data:`ROW_GROUP_ROWS`; their index entry (rows, bytes,
    checksum, per row group ``(rows, first exch_ts, last exch_ts)``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = events["exch_ts"].to_numpy()
    schema = _schema()
    groups = []
    with atomic_write(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for a in range(0, len(events), ROW_GROUP_ROWS):
                b = min(a + ROW_GROUP_ROWS, len(events))
                writer.write_table(pa.Table.from_pandas(events.iloc[a:b], schema=schema, preserve_index=False),
                                   row_group_size=ROW_GROUP_ROWS)
                groups.append((b - a, int(ts[a]), int(ts[b - 1])))
        return {"rows": int(len(events)), "bytes": tmp.stat().st_size, "sha256": _sha256(tmp), "groups": groups}


def _load_part(manifest: DatasetManifest, part: SourcePart, stem: str, cache: Path) -> tuple[StoredPart, dict]:
    """One part from its cache entry, normalised and written first when there is no sound one."""
    events_path, meta_path = cache / f"{stem}.parquet", cache / f"{stem}.json"
    found, damage = _read_cached(events_path, meta_path)
    if found is not None:
        return found
    with _locked(cache / f"{stem}.lock"):
        remove_dead_temps(cache)
        if damage is not None or events_path.exists() or meta_path.exists():
            found, _ = _read_cached(events_path, meta_path)  # another process may have (re)built it meanwhile
            if found is not None:
                return found
            if damage is not None:
                warnings.warn(f"{events_path}: data cache entry unusable ({damage}); rebuilding it", stacklevel=3)
        for stale in (meta_path, events_path):  # the index goes first: never a valid index on a bad file
            stale.unlink(missing_ok=True)
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                market = part.load()
                check_market(market, manifest)
        finally:
            for w in said:  # recorded to be kept with the entry; passed on as they were
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        info = _write_events(market.events, events_path)
        meta = {"format": CACHE_FORMAT, "events": info, "instrument": asdict(market.instrument),
                "sessions": market.sessions, "meta": _jsonable(market.meta),
                "warnings": [str(w.message) for w in said]}
        with atomic_write(meta_path) as tmp:
            tmp.write_text(json.dumps(meta))
    return StoredPart(events_path, info["sha256"], tuple(tuple(g) for g in info["groups"])), meta


def load_market(manifest: DatasetManifest, data_root: Path, registry: Registry, cache_dir: Path | None = None, *,
                allow_external: bool | None = None) -> StoredMarket:
    """The dataset's normalised events, part by part (:meth:`DataSource.parts`) from the cache when a
    part's inputs have not changed, as a :class:`StoredMarket` that reads them when asked.

    A part's cache entry is a parquet file of the events and a JSON index written after it with the
    parquet's size, SHA-256, row count and row groups; an entry that does not match them (truncated,
    emptied, altered, half written) is rebuilt with a one-line warning.  Entries are built under a
    lock, one part in memory at a time, written atomically, and temporary files of processes that
    died while writing are removed.  Nothing is cached for a part whose loading fails.
    """
    files = resolve_files(manifest, data_root, allow_external=allow_external)
    source_cls = registry.get("data", manifest.source, where=str(manifest.path), key="source")
    version = str(getattr(source_cls, "version", "0"))
    cache = (cache_dir or default_cache_dir()) / "data"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the data cache folder ({one_line(err)})", file=cache) from None
    source = registry.create("data", manifest.source, manifest.params, where=str(manifest.path), key="params")
    instrument = manifest.instrument.build() if manifest.instrument else None
    stored, metas, sessions = [], [], []
    for part in source.parts(files, instrument, data_root):
        got, meta = _load_part(manifest, part, f"{manifest.name}-{_part_key(manifest, part, version)}", cache)
        if stored and got.groups[0][1] < stored[-1].groups[-1][2]:
            raise DataError(f"data plugin {manifest.source!r}: part {part.key!r} starts before the part before it ends",
                            file=manifest.path)
        if metas and meta["instrument"] != metas[0]["instrument"]:
            raise DataError(f"data plugin {manifest.source!r}: part {part.key!r} has another instrument "
                            f"({meta['instrument']} after {metas[0]['instrument']})", file=manifest.path)
        stored.append(got)
        metas.append(meta)
        sessions.extend(tuple(s) for s in meta["sessions"])
    if not stored:
        raise DataError(f"data plugin {manifest.source!r} returned no data", file=manifest.path)
    return StoredMarket(stored, Instrument(**metas[0]["instrument"]), sessions, _merge_meta([m["meta"] for m in metas]))


def _merge_meta(metas: list[dict]) -> dict:
    """One part's facts as they are; several: numbers added, lists joined, anything else from the first."""
    if len(metas) == 1:
        return metas[0]
    out = dict(metas[0])
    for meta in metas[1:]:
        for key, value in meta.items():
            if key not in out:
                out[key] = value
            elif isinstance(value, list) and isinstance(out[key], list):
                out[key] = out[key] + value
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(out[key], (int, float)):
                out[key] = out[key] + value
    out["parts"] = len(metas)
    return out


def check_market(market: MarketData, manifest: DatasetManifest) -> None:
    """The plugin kept the schema contract (columns, dtypes, sorted, non-empty, codes and values in range)."""
    ev = market.events
    where = f"data plugin {manifest.source!r}"
    if list(ev.columns) != list(EVENT_COLUMNS) or any(str(ev[c].dtype) != t for c, t in EVENT_COLUMNS.items()):
        raise DataError(f"{where} returned columns {dict(ev.dtypes.astype(str))}, expected {EVENT_COLUMNS}", file=manifest.path)
    if ev.empty:
        raise DataError("no market events after loading (all rows filtered out?)", file=manifest.path)
    if not ev["exch_ts"].is_monotonic_increasing:
        raise DataError(f"{where} returned events not sorted by exch_ts", file=manifest.path)
    kind, side = ev["ev"].to_numpy(), ev["side"].to_numpy()
    price, qty = ev["price"].to_numpy(), ev["qty"].to_numpy()
    level = (kind == BOOK) | (kind == TRADE)
    bad = {
        "ev": ~np.isin(kind, (BOOK, TRADE, CLEAR)),
        "side": ~np.isin(side, (BID, ASK)),
        "price": level & ~((price > 0) & (price <= MAX_TICKS)),
        "qty": ~(np.isfinite(qty) & (qty >= 0)) | ((kind == TRADE) & ~(qty > 0)),
        "local_ts": ev["local_ts"].to_numpy() < ev["exch_ts"].to_numpy(),
    }
    for key, mask in bad.items():
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise DataError(f"{where} returned an invalid event at row {i} ({key} = {ev[key].iloc[i]!r})",
                            file=manifest.path, key=key)


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
