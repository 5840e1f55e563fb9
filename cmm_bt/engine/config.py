"""Options of the exchange simulator: the ``engine:`` section of a strategy YAML."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from cmm_bt.components import Params
from cmm_bt.engine.queue import QUEUE_MODELS  # the queue-model registry (name -> model)

#: Longest latency accepted (one day, in microseconds): times stay far inside int64 nanoseconds.
MAX_LATENCY_US = 86_400e6
#: Longest decision interval / episode accepted (366 days, in milliseconds).
MAX_INTERVAL_MS = 366 * 86_400e3
#: The engine's fees when a strategy sets none (fee_model proportional): 2 bp maker, 5 bp taker.
DEFAULT_MAKER_FEE, DEFAULT_TAKER_FEE = 0.0002, 0.0005
_PROPORTIONAL_KEYS = ("maker_fee", "taker_fee")
_PER_CONTRACT_KEYS = ("maker_fee_per_contract", "taker_fee_per_contract")


class EngineConfig(Params):
    """Decision grid, order sizing, latency, queue model, fees and episodes of one replay.

    See ``docs/engine.md`` for the exact semantics of every option.  Every number must be finite (no
    ``.inf`` / ``.nan``) and within the bounds the replay can honour (times in int64 nanoseconds).
    """

    model_config = ConfigDict(allow_inf_nan=False)

    decision_interval_ms: float = Field(
        100.0, ge=1e-6, le=MAX_INTERVAL_MS,
        description="Local time between two decision steps, milliseconds (at least 1 ns, at most 366 days).",
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
        1000.0, ge=0, le=MAX_LATENCY_US,
        description="Order-entry latency local -> exchange (new and cancel requests), microseconds (at most a day).",
    )
    response_latency_us: float = Field(
        1000.0,
        ge=0,
        le=MAX_LATENCY_US,
        description="Exchange -> local latency of order reports (fills, cancels, rejections), microseconds.",
    )
    feed_latency_us: float = Field(
        500.0,
        ge=0,
        le=MAX_LATENCY_US,
        description="Market-data latency added to events whose local_ts equals exch_ts (sources without "
        "receive timestamps); events with a real local_ts keep it. Microseconds.",
    )
    queue_model: Literal[tuple(QUEUE_MODELS)] = Field(  # type: ignore[valid-type] - the registry's names
        "conservative",
        description="Queue-position model: "
        + "; ".join(f"'{name}' ({model.description})" for name, model in QUEUE_MODELS.items()) + ".",
    )
    queue_exponent: float = Field(
        3.0, gt=0, le=1000, description="Exponent n of the power-prob queue model, f(x) = x**n."
    )
    partial_fills: bool = Field(
        False,
        description="False: hftbacktest's no-partial-fill exchange (an order fills completely once the queue "
        "ahead is exhausted by a trade at its price). True: only the traded quantity beyond the queue fills.",
    )
    fee_model: Literal["proportional", "per-contract"] = Field(
        "proportional",
        description="'proportional': fee = rate x |notional| (maker_fee / taker_fee, as crypto exchanges "
        "charge); 'per-contract': fee = fixed money per contract traded (maker_fee_per_contract / "
        "taker_fee_per_contract, as futures exchanges charge). The keys of the other model must be left out.",
    )
    maker_fee: float = Field(
        DEFAULT_MAKER_FEE, ge=-1, le=1,
        description="proportional: fee of passive fills as a fraction of notional; negative = rebate. "
        "Default 0.0002 (2 bp) when the strategy sets no fee.",
    )
    taker_fee: float = Field(
        DEFAULT_TAKER_FEE, ge=-1, le=1,
        description="proportional: fee of aggressive fills (crossing orders, end-of-episode flatten), fraction "
        "of notional. Default 0.0005 (5 bp) when the strategy sets no fee.",
    )
    maker_fee_per_contract: float = Field(
        0.0, description="per-contract: fee of a passive fill per contract (per unit of quantity), in the "
        "instrument's currency; negative = rebate."
    )
    taker_fee_per_contract: float = Field(
        0.0, description="per-contract: fee of an aggressive fill per contract, in the instrument's currency."
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
        3600.0, ge=1e-6, le=MAX_INTERVAL_MS / 1e3,
        description="Episode length in seconds when episode_mode is 'fixed' (at least one decision interval, at "
        "most 366 days).",
    )
    flatten_at_episode_end: bool = Field(
        True,
        description="At the end of each episode close the inventory with a taker order at the exchange touch "
        "(paying taker_fee); otherwise the position is carried into the next episode.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_fee_model(cls, data: Any) -> Any:
        """The keys of the fee model not chosen must be left out; per-contract has no proportional fee."""
        if not isinstance(data, dict):
            return data
        model = data.get("fee_model", "proportional")
        unused = _PROPORTIONAL_KEYS if model == "per-contract" else _PER_CONTRACT_KEYS if model == "proportional" else ()
        given = [k for k in unused if k in data and data[k] not in (0, 0.0, None)]
        if given:
            use = _PER_CONTRACT_KEYS if model == "per-contract" else _PROPORTIONAL_KEYS
            raise ValueError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply with fee_model "
                             f"{model!r} (it uses {' / '.join(use)})")
        if model == "per-contract":
            data = {**data, "maker_fee": 0.0, "taker_fee": 0.0}
        return data

    @model_validator(mode="after")
    def _episode_holds_a_decision(self) -> "EngineConfig":
        if self.episode_mode == "fixed" and self.episode_length_s * 1e3 < self.decision_interval_ms:
            raise ValueError(f"episode_length_s ({self.episode_length_s:g} s) is shorter than one decision interval "
                             f"({self.decision_interval_ms:g} ms): no episode could hold a decision")
        return self

    @property
    def decision_interval_ns(self) -> int:
        return int(round(self.decision_interval_ms * 1e6))

    @property
    def feed_latency_ns(self) -> int:
        """Added to ``exch_ts`` where a source gave no local receive time (``local_ts == exch_ts``)."""
        return int(round(self.feed_latency_us * 1000))

    def fee_summary(self, currency: str = "") -> str:
        """The fee model in words, saying when the engine's defaults apply (nothing set by the strategy)."""
        cur = f" {currency}" if currency else ""
        if self.fee_model == "per-contract":
            return (f"per-contract: maker {self.maker_fee_per_contract:g}{cur}, taker {self.taker_fee_per_contract:g}"
                    f"{cur} per contract")
        text = f"proportional: maker {self.maker_fee * 1e4:g} bp, taker {self.taker_fee * 1e4:g} bp of notional"
        defaults = [k for k in _PROPORTIONAL_KEYS if k not in self.model_fields_set]
        if len(defaults) == 2:
            return text + " (engine defaults: the strategy sets no fees)"
        if defaults:
            return text + f" ({defaults[0]}: engine default)"
        return text
