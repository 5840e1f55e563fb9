"""Queue-position models: how much of the quantity resting at our price is ahead of our order.

A model is one plain function and one entry of :data:`QUEUE_MODELS` (see docs/engine.md, "Adding a
queue model"); :mod:`cmm_bt.engine.kernel` compiles every registered function with numba and
dispatches on the entry's position, and :class:`cmm_bt.engine.config.EngineConfig` accepts its name
as ``engine.queue_model``.  This module does not import numba, so the config stays cheap to load.

``model(front, prev, new, cum, exponent) -> front`` is called when the level quantity at our price
goes ``prev -> new``: ``front`` is the quantity ahead of us (trades at our price have already been
subtracted from it), ``cum`` the quantity traded at our price since the last level change (the
kernel resets it to 0 after the call) and ``exponent`` is ``engine.queue_exponent``.  It returns the
new quantity ahead, which must not exceed ``new``.  It has to be numba-compilable (floats, ``math``,
``min``/``max``; no calls to other functions of this module, which stay plain Python) and
deterministic.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple


def conservative(front, prev, new, cum, exponent):
    """Only trades move us forward; a shrinking level only clips the queue ahead to its size."""
    return min(front, new)


def power_prob(front, prev, new, cum, exponent):
    """hftbacktest's ProbQueueModel with ``f(x) = x ** exponent``: a decrease ``chg`` of the level
    happened behind us with probability ``f(back) / (f(back) + f(front))``."""
    chg = prev - new - cum  # trades at the level already moved us: not counted twice
    if chg < 0.0:
        return min(front, new)
    back = max(prev - front, 0.0)
    f_back = back**exponent
    den = f_back + max(front, 0.0) ** exponent
    prob = f_back / den if den > 0.0 else 1.0
    return min(front - (1.0 - prob) * chg + min(back - prob * chg, 0.0), new)


def log_prob(front, prev, new, cum, exponent):
    """ProbQueueModel with ``f(x) = log(1 + x)`` (otherwise as :func:`power_prob`)."""
    chg = prev - new - cum
    if chg < 0.0:
        return min(front, new)
    back = max(prev - front, 0.0)
    f_back = math.log1p(back)
    den = f_back + math.log1p(max(front, 0.0))
    prob = f_back / den if den > 0.0 else 1.0
    return min(front - (1.0 - prob) * chg + min(back - prob * chg, 0.0), new)


class QueueModel(NamedTuple):
    function: Callable[[float, float, float, float, float], float]
    description: str


#: ``engine.queue_model`` name -> model.  The kernel numbers the models in this order.
QUEUE_MODELS: dict[str, QueueModel] = {
    "conservative": QueueModel(
        conservative,
        "hftbacktest RiskAdverseQueueModel: only trades at our price advance us; level decreases only clip "
        "the queue ahead to the level size",
    ),
    "power-prob": QueueModel(power_prob, "ProbQueueModel with f(x)=x**queue_exponent"),
    "log-prob": QueueModel(log_prob, "ProbQueueModel with f(x)=log(1+x)"),
}


def queue_model_code(name: str) -> int:
    """The kernel's number for the model ``name``."""
    return list(QUEUE_MODELS).index(name)
