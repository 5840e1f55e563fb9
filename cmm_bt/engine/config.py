"""Options of the exchange simulator: the ``engine:`` section of a strategy YAML."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cmm_bt.components import Params
from cmm_bt.engine.queue import QUEUE_MODELS  # the queue-model registry (name -> model)


class EngineConfig(Params):
    """Decision grid, order sizing, latency, queue model, fees and episodes of one replay.

    See ``docs/engine.md`` for the exact semantics of every option.
    """

    decision_interval_ms: float = Field(
        100.0, gt=0, description="Local time between two decision steps, milliseconds."
    )
    order_qty: float = Field(
        1.0, gt=0, description="Default quote size (contracts / base units) handed to execution policies."
    )
    position_limit: float = Field(
        10.0,
        gt=0,
        description="Hard inventory limit: a new order is rejected at the exchange when the position plus "
        "all open same-side orders plus the new order could exceed it in absolute value.",
    )
    entry_latency_us: float = Field(
        1000.0, ge=0, description="Order-entry latency local -> exchange (new and cancel requests), microseconds."
    )
    response_latency_us: float = Field(
        1000.0,
        ge=0,
        description="Exchange -> local latency of order reports (fills, cancels, rejections), microseconds.",
    )
    feed_latency_us: float = Field(
        500.0,
        ge=0,
        description="Market-data latency added to events whose local_ts equals exch_ts (sources without "
        "receive timestamps); events with a real local_ts keep it. Microseconds.",
    )
    queue_model: Literal[tuple(QUEUE_MODELS)] = Field(  # type: ignore[valid-type] - the registry's names
        "conservative",
        description="Queue-position model: "
        + "; ".join(f"'{name}' ({model.description})" for name, model in QUEUE_MODELS.items()) + ".",
    )
    queue_exponent: float = Field(
        3.0, gt=0, description="Exponent n of the power-prob queue model, f(x) = x**n."
    )
    partial_fills: bool = Field(
        False,
        description="False: hftbacktest's no-partial-fill exchange (an order fills completely once the queue "
        "ahead is exhausted by a trade at its price). True: only the traded quantity beyond the queue fills.",
    )
    maker_fee: float = Field(
        0.0002, description="Fee of passive fills as a fraction of notional; negative = rebate."
    )
    taker_fee: float = Field(
        0.0005, description="Fee of aggressive fills (crossing orders, end-of-episode flatten), fraction of notional."
    )
    post_only: bool = Field(
        True,
        description="GTX: a new order that would cross the exchange book when it arrives is rejected. False: "
        "it takes liquidity as a taker, walking the levels up to its limit price, and any rest is posted.",
    )
    episode_mode: Literal["session", "fixed"] = Field(
        "session",
        description="'session': one episode per trading session of the data; 'fixed': each session is cut "
        "into consecutive episodes of episode_length_s.",
    )
    episode_length_s: float = Field(
        3600.0, gt=0, description="Episode length in seconds when episode_mode is 'fixed'."
    )
    flatten_at_episode_end: bool = Field(
        True,
        description="At the end of each episode close the inventory with a taker order at the exchange touch "
        "(paying taker_fee); otherwise the position is carried into the next episode.",
    )

    @property
    def decision_interval_ns(self) -> int:
        return int(round(self.decision_interval_ms * 1e6))
