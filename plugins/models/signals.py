"""The signal contract: the prediction tasks and the signal column each one is published under.

Features build targets in :data:`TASKS` order, every model predicts them in that order, and the
model pipelines publish their predictions as the :data:`SIGNAL_COLUMNS` that ``classic-price``
(and any policy) reads from ``DecisionState.signals``.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("mid", "spread", "volume")
"""The three prediction tasks, in the order every model uses: mid change (ticks), mean spread
(ticks) and log traded volume over the horizon."""

SIGNAL_COLUMNS: dict[str, str] = {task: f"pred_{task}" for task in TASKS}
"""Task -> name of the signal column carrying its prediction."""

SIGNALS: tuple[str, ...] = tuple(SIGNAL_COLUMNS.values())
"""The signal columns in task order (``pred_mid``, ``pred_spread``, ``pred_volume``)."""

PRED_ERROR_METRIC = "pred_mae_{task}"
"""Metric key of a model's mean absolute error on a task (on the rows the teacher predicted)."""
