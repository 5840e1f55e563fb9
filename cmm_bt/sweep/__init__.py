"""``cmm-bt sweep``: tune a strategy's keys on a split with grid, random or TPE search.

:func:`run_sweep` takes a :class:`SweepSpec`; trials run on an executor (:mod:`cmm_bt.executors`),
each as a normal run folder under ``DIR/trials/``; ``DIR/sweep.json`` lists them, ``sweep.md`` and
``sweep.parquet`` rank them and ``DIR/best.yaml`` is the winner as a strategy file.  See
``docs/sweeps.md``.
"""

from __future__ import annotations

from cmm_bt.sweep.runner import SweepResult, SweepSpec, run_sweep

__all__ = ["SweepResult", "SweepSpec", "run_sweep"]
