"""The exchange simulator.

numba's on-disk cache (``cache=True``) is keyed by each function's own source file, but the engine's
kernels inline functions of the other engine modules: after an edit of ``kernel.py`` or ``book.py``
(or an upgrade of cmm-bt that changes them) the cached machine code of ``compiled.py`` would still run
the old code.  :func:`_drop_stale_jit_cache` runs once at import: when the engine's sources differ
from those the cache was built from (a SHA-256 stamp next to the cache files), it deletes the
engine's cache files so numba compiles afresh.  A cache moved elsewhere with ``NUMBA_CACHE_DIR`` is
not checked.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _drop_stale_jit_cache(here: Path = Path(__file__).resolve().parent) -> bool:
    """Delete ``here/__pycache__/*.nbi|*.nbc`` when the ``*.py`` of ``here`` changed; True if it did."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    try:
        digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
        cache = here / "__pycache__"
        stamp = cache / "numba-sources.sha256"
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return False
        for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        tmp = cache / f".numba-sources.{os.getpid()}.tmp"
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)
        return True
    except OSError:  # a read-only installation: numba then caches elsewhere or not at all
        return False


_drop_stale_jit_cache()
