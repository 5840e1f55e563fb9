"""The one user-facing error type.

A :class:`CmmBtError` is printed by the CLI as one red line and ends the process with exit code 2
(bad usage, configuration or input data).  Anything else that escapes is a bug: exit code 1, with a
traceback under ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class CmmBtError(Exception):
    """Bad usage, configuration or input data.  ``str(err)`` is the whole one-line message."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None):
        self.file = str(file) if file is not None else None
        self.key = key
        self.message = message
        parts = [p for p in (self.file, key) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(CmmBtError):
    """A strategy or dataset manifest is malformed or names something unknown."""


class DataError(CmmBtError):
    """A market-data file is missing, corrupted or violates the event schema."""
