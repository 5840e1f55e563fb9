"""An example third-party cmm-bt plugin: the ``join-touch`` quoting policy.

It quotes at the best bid and ask (joining the queue), steps back ``back_off_ticks`` on the side
that would add to inventory once ``|position|`` reaches ``lean_at``, and stops quoting a side at
the position limit.
"""

from __future__ import annotations

from pydantic import Field

from cmm_bt import hookimpl
from cmm_bt.components import DecisionState, ExecutionPolicy, Params, Quotes, RunContext


class JoinTouch(ExecutionPolicy):
    """Join the best bid and ask; back off the side that would add to a large inventory."""

    name = "join-touch"

    class Config(Params):
        qty: float = Field(1.0, gt=0, description="Order size on each side.")
        lean_at: float = Field(2.0, ge=0, description="|position| from which the inventory-adding side backs off.")
        back_off_ticks: int = Field(1, ge=0, description="How many ticks that side backs off.")

    def fit(self, context: RunContext) -> None:
        self.limit = context.position_limit

    def quote(self, state: DecisionState) -> Quotes:
        c = self.config
        bid, ask = state.best_bid, state.best_ask
        if state.position >= c.lean_at:
            bid -= c.back_off_ticks
        if state.position <= -c.lean_at:
            ask += c.back_off_ticks
        can_buy = state.position + c.qty <= self.limit
        can_sell = state.position - c.qty >= -self.limit
        return Quotes(
            bid_price=bid if can_buy else None,
            bid_qty=c.qty if can_buy else 0.0,
            ask_price=ask if can_sell else None,
            ask_qty=c.qty if can_sell else 0.0,
        )


@hookimpl
def cmm_bt_register_execution(register):
    register(JoinTouch, aliases=("join",))
