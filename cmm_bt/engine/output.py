"""What one backtest produces: the raw material of metrics, reports and the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cmm_bt.data.schema import Instrument

#: Columns of :attr:`BacktestOutput.steps`, one row per decision step.
STEP_COLUMNS = {
    "ts": "int64",  # local decision time, ns
    "episode": "int32",
    "best_bid": "int64",  # local view, ticks
    "best_ask": "int64",
    "mid": "float64",  # ticks
    "position": "float64",  # true (exchange-side) inventory after the step's events
    "cash": "float64",  # money, fees included
    "equity": "float64",  # cash + Instrument.value(position, mid) (mark to mid), money
    "bid_quote": "float64",  # ticks, NaN when no bid was wanted
    "ask_quote": "float64",
    "decision_latency_ns": "int64",  # wall time of the policy call (and hooks); NOT_MEASURED with a compiled policy
}

#: ``decision_latency_ns`` of a step whose policy call was not timed (compiled policies).
NOT_MEASURED = -1

#: Columns of :attr:`BacktestOutput.fills`, one row per fill (partial fills are separate rows).
FILL_COLUMNS = {
    "ts": "int64",  # exchange time of the fill, ns
    "local_ts": "int64",  # when the agent learns of it (ts + response latency)
    "order_id": "int64",  # deterministic: 1, 2, 3 ... in submission order
    "side": "int8",  # +1 we bought, -1 we sold
    "price": "int64",  # ticks
    "qty": "float64",
    "fee": "float64",  # money paid (negative = rebate)
    "maker": "bool",  # False for taker fills (crossing orders, end-of-episode flatten)
    "episode": "int32",
    "mid_at_fill": "float64",  # exchange mid in ticks just before the fill
}


@dataclass
class BacktestOutput:
    """Everything the engine measured in one run.

    :ivar steps: per decision step, ``STEP_COLUMNS``.
    :ivar fills: per fill, ``FILL_COLUMNS``.
    :ivar episodes: per episode: ``episode, start_ns, end_ns, pnl, fees, fills, volume,
        mean_abs_position, max_abs_position``.
    :ivar counters: order-flow counts: ``orders_submitted, orders_cancelled, orders_rejected,
        orders_filled`` and ``events`` (market events replayed); the engine adds
        ``orders_rejected_post_only, orders_rejected_position_limit, orders_rejected_price_range,
        taker_orders`` (crossing orders and end-of-episode flattens) and ``steps``.
    :ivar wall_s: wall time of the replay (not data loading), seconds.
    """

    instrument: Instrument
    steps: pd.DataFrame
    fills: pd.DataFrame
    episodes: pd.DataFrame
    counters: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
