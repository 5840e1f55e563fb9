"""A test plugin (loaded with --plugins-dir): the fixed-spread policy with ways to fail on purpose.

- ``fail: true`` raises in ``fit`` (a trial that fails; the sweep goes on);
- ``die_once: PATH`` kills its own process with SIGKILL if it is the first to create PATH, so one
  trial's first attempt loses its worker and the retry succeeds;
- ``die_always: true`` kills its process every time (retries run out).
"""

from __future__ import annotations

import os
import signal
from typing import ClassVar

from cmm_bt import hookimpl
from cmm_bt_plugins.execution.fixed_spread import FixedSpread


class FlakySpread(FixedSpread):
    name: ClassVar[str] = "flaky-spread"

    class Config(FixedSpread.Config):
        fail: bool = False
        die_once: str | None = None
        die_always: bool = False

    def fit(self, context):
        c = self.config
        if c.fail:
            raise RuntimeError("flaky-spread was told to fail")
        if c.die_always:
            os.kill(os.getpid(), signal.SIGKILL)
        if c.die_once:
            try:  # exactly one process creates the marker, and that one dies
                fd = os.open(c.die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        super().fit(context)


@hookimpl
def cmm_bt_register_execution(register):
    register(FlakySpread)
