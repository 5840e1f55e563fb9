"""The on-disk cache of pipeline stage products: one folder per (stage, key), atomic and locked.

Layout under the cache root::

    stages/<stage>/<key>/           the product, as the stage's ``save`` wrote it, plus complete.json
    stages/<stage>/<key>.lock       an advisory lock (fcntl) held while the product is computed
    stages/<stage>/<key>.work/      scratch kept across interruptions (a resumable stage's progress)

A product folder appears only complete (written under a temporary name, then renamed), so a run
killed at any moment leaves either no entry or a whole one (its ``.KEY.tmp-PID`` leftover is removed by
the next store in that stage folder once the process ``PID`` is gone); two processes that need the same
entry wait for each other instead of computing it twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from cmm_bt.storage import remove_dead_temps

COMPLETE = "complete.json"


class StageCache:
    """Product folders of pipeline stages under ``root / "stages"``."""

    def __init__(self, root: Path):
        self.root = Path(root) / "stages"

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        """True when a complete product is stored for ``(stage, key)``."""
        return (self.folder(stage, key) / COMPLETE).is_file()

    def work_dir(self, stage: str, key: str) -> Path:
        """A persistent scratch folder for ``(stage, key)`` (created; removed once the product is stored)."""
        path = self.root / stage / f"{key}.work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the entry's lock (blocks while another process holds it)."""
        path = self.root / stage / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def store(self, stage: str, key: str, write: Callable[[Path], None], meta: dict[str, Any]) -> Path:
        """Write a product with ``write(folder)`` into a temporary folder, then rename it into place."""
        final = self.folder(stage, key)
        tmp = final.with_name(f".{key}.tmp-{os.getpid()}")
        remove_dead_temps(final.parent)  # products of processes killed while writing (never a live one's)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            write(tmp)
            (tmp / COMPLETE).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self.root / stage / f"{key}.work", ignore_errors=True)
        return final
