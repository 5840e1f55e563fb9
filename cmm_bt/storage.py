"""Atomic file and folder writes: readers never see a half-written result."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


#: Temporary names written by this project: ``.NAME.tmp-PID`` (files and folders) and ``.NAME.old-PID``
#: (a replaced run folder kept until its successor is in place).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (one owned by another user counts)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. pid out of range
        return False
    return True


def remove_dead_temps(folder: Path, *, restore_old: bool = False) -> list[Path]:
    """Remove the ``.NAME.tmp-PID`` / ``.NAME.old-PID`` leftovers in ``folder`` of processes that no longer
    run (killed while writing); a live process's temporaries are never touched.

    :param restore_old: a ``.NAME.old-PID`` folder whose ``NAME`` is missing (the writer died between
        moving the previous version aside and moving the new one in) is renamed back to ``NAME``
        instead of being deleted, so nothing is lost.
    :returns: the paths removed or restored.
    """
    folder = Path(folder)
    done: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return done
    for p in entries:
        m = _TEMP_NAME.match(p.name)
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        try:
            target = folder / m.group("name")
            if m.group("kind") == "old" and restore_old and not os.path.lexists(target):
                os.rename(p, target)
            elif p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        except OSError:
            continue
        done.append(p)
    return done
