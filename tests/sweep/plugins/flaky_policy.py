"""A test plugin (loaded with --plugins-dir): the fixed-spread policy with ways to fail on purpose.

- ``fail: true`` raises in ``fit`` (a trial that fails; the sweep goes on);
- ``die_once: PATH`` kills its own process with SIGKILL the first time (it creates PATH first), so
  the trial's first attempt loses its worker and the retry succeeds;
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
        if c.die_once and not os.path.exists(c.die_once):
            with open(c.die_once, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        super().fit(context)


@hookimpl
def cmm_bt_register_execution(register):
    register(FlakySpread)
