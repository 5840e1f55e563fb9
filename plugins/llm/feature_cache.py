"""On-disk, memory-mapped, resumable store of teacher features.

Layout of one entry ``<cache_dir>/<key>/`` (``key`` hashes model, template, window spec, layers,
pooling and data; see :meth:`HFCausalLMTeacher.cache_key`):

* ``meta.json`` — what was extracted (model, config, layers, hidden size, number of samples);
* ``indices.npy`` — the feature-set rows the samples belong to, ``int64 [n]``;
* ``layer_<l>.f32`` — raw ``float32 [n, hidden]`` (C order) per kept layer ``l``, opened with
  ``np.memmap``;
* ``progress.json`` — ``{"done": k}``: rows ``0..k-1`` of every layer file are final.  Rows are
  written chunk by chunk; ``progress.json`` is replaced atomically after each chunk is flushed,
  so an interrupted extraction restarts at the last completed chunk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LayerFeatures:
    """Teacher features of ``n`` samples.

    :ivar indices: row of each sample in its :class:`~cmm_bt_plugins.features.market.FeatureSet`, ``int64 [n]``.
    :ivar layers: kept hidden-state layers (0 = embeddings), sorted.
    :ivar arrays: ``{layer: float32 [n, hidden]}`` (read-only memory maps when from the cache).
    :ivar path: the cache entry folder, or None for in-memory features.
    """

    indices: np.ndarray
    layers: list[int]
    arrays: dict[int, np.ndarray]
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def hidden(self) -> int:
        return int(next(iter(self.arrays.values())).shape[1])

    def layer(self, l: int) -> np.ndarray:
        """``float32 [n, hidden]`` of one layer."""
        if l not in self.arrays:
            raise KeyError(f"layer {l} was not kept (kept: {self.layers})")
        return self.arrays[l]

    def stack(self, layers: list[int]) -> np.ndarray:
        """Concatenation of ``layers`` along the feature axis, ``float32 [n, len(layers) * hidden]``."""
        return np.concatenate([self.layer(l) for l in layers], axis=1)

    def subset(self, rows: np.ndarray) -> "LayerFeatures":
        """The samples at positions ``rows`` (in memory)."""
        rows = np.asarray(rows)
        return LayerFeatures(self.indices[rows], list(self.layers), {l: np.asarray(a[rows]) for l, a in self.arrays.items()})


class FeatureCache:
    """One cache entry being filled (see the module doc)."""

    def __init__(self, path: Path, indices: np.ndarray, layers: list[int], hidden: int):
        self.path, self.indices, self.layers, self.hidden = path, indices, layers, hidden
        self.n = int(indices.shape[0])
        prog = path / "progress.json"
        self.done = int(json.loads(prog.read_text())["done"]) if prog.is_file() else 0
        self._maps = {l: np.memmap(self._file(l), dtype=np.float32, mode="r+", shape=(self.n, hidden)) for l in layers} if self.n else {}

    def _file(self, l: int) -> Path:
        return self.path / f"layer_{l:03d}.f32"

    @property
    def complete(self) -> bool:
        return self.done >= self.n

    def write_chunk(self, start: int, block: dict[int, np.ndarray]) -> None:
        """Write rows ``start..start+len`` of every layer, flush, then record progress."""
        if start != self.done:
            raise ValueError(f"chunks must be written in order: expected row {self.done}, got {start}")
        k = next(iter(block.values())).shape[0]
        for l in self.layers:
            self._maps[l][start:start + k] = block[l]
            self._maps[l].flush()
        self.done = start + k
        _atomic_json(self.path / "progress.json", {"done": self.done})

    def features(self) -> LayerFeatures:
        """The finished features, memory-mapped read-only."""
        if not self.complete:
            raise RuntimeError(f"feature cache {self.path} is incomplete ({self.done}/{self.n})")
        self._maps = {}
        arrays = {l: (np.memmap(self._file(l), dtype=np.float32, mode="r", shape=(self.n, self.hidden)) if self.n
                      else np.zeros((0, self.hidden), np.float32)) for l in self.layers}
        return LayerFeatures(self.indices.copy(), list(self.layers), arrays, self.path)


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def open_cache(path: Path, indices: np.ndarray, layers: list[int], hidden: int, meta: dict[str, Any]) -> FeatureCache:
    """Open (or create) the entry at ``path``; a damaged or mismatching entry is started afresh."""
    indices = np.asarray(indices, dtype=np.int64)
    meta = {**meta, "layers": layers, "hidden": hidden, "n": int(indices.size)}
    ok = False
    if (path / "meta.json").is_file() and (path / "indices.npy").is_file():
        try:
            old = json.loads((path / "meta.json").read_text())
            old_idx = np.load(path / "indices.npy")
            size_ok = all((path / f"layer_{l:03d}.f32").is_file()
                          and (path / f"layer_{l:03d}.f32").stat().st_size == indices.size * hidden * 4 for l in layers)
            ok = old.get("layers") == layers and old.get("hidden") == hidden and np.array_equal(old_idx, indices) and size_ok
        except (ValueError, OSError):
            ok = False
    if not ok:
        path.mkdir(parents=True, exist_ok=True)
        (path / "progress.json").unlink(missing_ok=True)
        np.save(path / "indices.npy", indices)
        for l in layers:
            with open(path / f"layer_{l:03d}.f32", "wb") as f:
                f.truncate(indices.size * hidden * 4)
        _atomic_json(path / "meta.json", meta)
    return FeatureCache(path, indices, layers, hidden)


def save_features(features: LayerFeatures, folder: Path) -> None:
    """Put ``features`` into ``folder`` (an entry of this layout): files of a finished entry are
    moved there (same file system), in-memory features are written."""
    folder.mkdir(parents=True, exist_ok=True)
    if features.path is not None:
        for f in sorted(features.path.iterdir()):
            os.replace(f, folder / f.name)
        return
    np.save(folder / "indices.npy", features.indices)
    for l in features.layers:
        np.ascontiguousarray(features.layer(l), dtype=np.float32).tofile(folder / f"layer_{l:03d}.f32")
    _atomic_json(folder / "meta.json", {"layers": features.layers, "hidden": features.hidden if features.arrays else 0, "n": len(features)})
    _atomic_json(folder / "progress.json", {"done": len(features)})


def load_features(folder: Path) -> LayerFeatures:
    """The features stored in ``folder``, memory-mapped read-only."""
    meta = json.loads((folder / "meta.json").read_text())
    cache = FeatureCache.__new__(FeatureCache)
    cache.path, cache.layers, cache.hidden = folder, list(meta["layers"]), int(meta["hidden"])
    cache.indices = np.load(folder / "indices.npy")
    cache.n = int(cache.indices.shape[0])
    cache.done = cache.n
    return cache.features()


__all__ = ["LayerFeatures", "FeatureCache", "load_features", "open_cache", "save_features"]
