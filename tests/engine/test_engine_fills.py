"""Golden tests of the fill rules on small hand-built event tables."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import ASK, BID, Script, base_book, book, cfg, first_step, market, ms, once, trade

from cmm_bt.components import Quotes
from cmm_bt.engine.loop import run_backtest


def run(rows, policy_fn, **kw):
    kw.setdefault("flatten_at_episode_end", False)
    pol = Script(policy_fn)
    out = run_backtest(market(rows), pol, cfg(**kw))
    return out, pol


def test_trade_through_fills_fully_at_our_price():
    rows = base_book() + [trade(50, ASK, 100, 1.0)]  # seller hits 100, below our 101 bid
    out, _ = run(rows, first_step(Quotes(bid_price=101, bid_qty=2.0)))
    f = out.fills
    assert len(f) == 1
    assert (f.price[0], f.qty[0], f.side[0], bool(f.maker[0])) == (101, 2.0, 1, True)
    assert f.ts[0] == ms(50) and f.local_ts[0] == ms(51)
    assert f.mid_at_fill[0] == 101.0
    assert out.counters["orders_filled"] == 1


def test_conservative_queue_fills_only_after_queue_ahead_traded():
    rows = base_book(bq=5.0) + [
        trade(20, ASK, 100, 3.0),
        book(20, BID, 100, 2.0),
        trade(30, ASK, 100, 2.0),  # exactly the 5 lots ahead: not yet us
        book(30, BID, 100, 1.0),  # someone else joined behind... level shows 1 (we are not in the data)
        trade(40, ASK, 100, 1.0),  # passes us
    ]
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="conservative")
    assert len(out.fills) == 1
    assert out.fills.ts[0] == ms(40)


def test_queue_not_filled_when_trades_do_not_exhaust_queue():
    rows = base_book(bq=5.0) + [trade(20, ASK, 100, 3.0), trade(30, ASK, 100, 2.0)]
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=1.0)))
    assert len(out.fills) == 0


# A level of 10 lots; we join (10 ahead), 10 more join behind us, then 6 lots cancel (no trades),
# then a seller trades 8 lots at our price.
CANCEL_ROWS = base_book(bq=10.0) + [
    book(10, BID, 100, 20.0),
    book(20, BID, 100, 14.0),
    trade(30, ASK, 100, 8.0),
]


def test_cancel_ahead_conservative_keeps_queue():
    # conservative: front = min(10, 14) = 10; the trade of 8 leaves 2 ahead -> no fill
    out, _ = run(CANCEL_ROWS, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="conservative")
    assert len(out.fills) == 0


def test_cancel_ahead_power_prob_advances_queue():
    # power-prob n=3: front=10, back=10 -> P(behind)=0.5; front = 10 - 0.5*6 = 7; trade 8 -> -1 -> fill
    out, _ = run(CANCEL_ROWS, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="power-prob")
    assert len(out.fills) == 1 and out.fills.ts[0] == ms(30)


def test_power_prob_trade_of_7_is_not_enough():
    rows = CANCEL_ROWS[:-1] + [trade(30, ASK, 100, 7.0)]  # front 7 -> 0: not past us
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="power-prob")
    assert len(out.fills) == 0


@pytest.mark.parametrize("partial,expected", [(True, [2.0]), (False, [3.0])])
def test_partial_fills(partial, expected):
    rows = base_book(bq=2.0) + [trade(20, ASK, 100, 4.0)]  # 2 ahead, 2 beyond the queue
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=3.0)), partial_fills=partial)
    assert out.fills.qty.tolist() == expected


def test_partial_fill_then_rest_fills_from_front():
    rows = base_book(bq=2.0) + [trade(20, ASK, 100, 4.0), trade(40, ASK, 100, 1.0)]
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=3.0)), partial_fills=True)
    assert out.fills.qty.tolist() == [2.0, 1.0]
    assert out.counters["orders_filled"] == 1


def test_opposite_quote_reaching_our_price_fills_as_maker():
    # our ask at 102 (5 ahead); the bid moves up to 102: the ask side at 102 is consumed -> we fill at 102
    rows = base_book() + [book(50, BID, 102, 3.0)]
    out, _ = run(rows, first_step(Quotes(ask_price=102, ask_qty=1.0)))
    f = out.fills
    assert len(f) == 1 and f.price[0] == 102 and f.side[0] == -1 and bool(f.maker[0])


def test_latency_makes_order_miss_the_trade():
    rows = base_book() + [trade(5, ASK, 101, 1.0)]
    fast, _ = run(rows, first_step(Quotes(bid_price=101, bid_qty=1.0)), entry_latency_us=1000)
    slow, _ = run(rows, first_step(Quotes(bid_price=101, bid_qty=1.0)), entry_latency_us=10_000)
    assert len(fast.fills) == 1
    assert len(slow.fills) == 0


def test_post_only_rejects_order_that_crosses_on_arrival():
    rows = base_book() + [book(5, ASK, 101, 5.0)]  # the ask comes down to 101 before our bid arrives
    out, _ = run(rows, once(Quotes(bid_price=101, bid_qty=1.0)), entry_latency_us=10_000)
    assert len(out.fills) == 0
    assert out.counters["orders_rejected"] == 1 and out.counters["orders_rejected_post_only"] == 1


def test_non_post_only_crossing_order_takes_and_walks_levels():
    rows = base_book() + [book(0, ASK, 103, 5.0), book(5, ASK, 101, 2.0)]
    out, _ = run(rows, once(Quotes(bid_price=103, bid_qty=8.0)), entry_latency_us=10_000, post_only=False,
                 taker_fee=0.001, position_limit=20)
    f = out.fills[out.fills.ts == ms(10)]
    assert f.price.tolist() == [101, 102, 103]
    assert f.qty.tolist() == [2.0, 5.0, 1.0]
    assert not f.maker.any()
    assert np.allclose(f.fee, 0.001 * f.qty * f.price * 5.0)


def test_position_limit_rejects_at_exchange():
    ok, _ = run(base_book(), once(Quotes(bid_price=100, bid_qty=2.0)), position_limit=2)
    assert ok.counters["orders_rejected"] == 0
    bad, _ = run(base_book(), once(Quotes(bid_price=100, bid_qty=3.0)), position_limit=2)
    assert bad.counters["orders_rejected_position_limit"] == 1


def test_position_limit_counts_inventory_and_open_orders():
    # buy 2 at 101 (filled by a trade-through), then a new bid of 1 must be rejected with limit 2
    rows = base_book() + [trade(50, ASK, 100, 5.0)]
    fn = lambda s: Quotes(bid_price=101, bid_qty=2.0) if s.step == 0 else Quotes(bid_price=99, bid_qty=1.0)
    out, _ = run(rows, fn, position_limit=2, flatten_at_episode_end=False)
    assert out.fills.qty.sum() == 2.0
    assert out.counters["orders_rejected_position_limit"] >= 1
    assert out.steps.position.abs().max() <= 2.0


def test_maker_rebate_is_a_negative_fee():
    rows = base_book() + [trade(50, ASK, 100, 1.0)]
    out, _ = run(rows, first_step(Quotes(bid_price=101, bid_qty=2.0)), maker_fee=-0.0001,
                 flatten_at_episode_end=False)
    fee = out.fills.fee[0]
    assert fee == pytest.approx(-0.0001 * 2 * 101 * 5.0)
    assert out.steps.cash.iloc[-1] == pytest.approx(-2 * 101 * 5.0 - fee)


def test_round_trip_cash_and_pnl():
    # buy 1 at 101 (trade-through at 50 ms), then sell 1 at 103 (trade-through at 250 ms)
    rows = base_book(bid=100, ask=104) + [trade(50, ASK, 100, 1.0), trade(250, BID, 104, 1.0)]

    def fn(s):
        return Quotes(bid_price=101, bid_qty=1.0) if s.step < 2 else Quotes(ask_price=103, ask_qty=1.0)

    out, _ = run(rows, fn)
    assert out.fills.side.tolist() == [1, -1]
    assert out.fills.price.tolist() == [101, 103]
    assert out.steps.cash.iloc[-1] == pytest.approx(2 * 5.0)  # 2 ticks * tick_value 5
    assert out.episodes.pnl[0] == pytest.approx(10.0)
    assert out.steps.position.iloc[-1] == 0


def test_flatten_at_episode_end_pays_taker_fee_at_touch():
    rows = base_book() + [trade(50, ASK, 100, 1.0), book(500, BID, 99, 4.0), book(500, BID, 100, 0.0)]
    out, _ = run(rows, once(Quotes(bid_price=101, bid_qty=1.0)), taker_fee=0.001, flatten_at_episode_end=True)
    f = out.fills
    assert len(f) == 2
    last = f.iloc[-1]
    assert (last.side, last.price, bool(last.maker)) == (-1, 99, False)
    assert last.ts == ms(1000)
    assert last.fee == pytest.approx(0.001 * 99 * 5.0)
    ep = out.episodes.iloc[0]
    assert ep.pnl == pytest.approx((99 - 101) * 5.0 - last.fee)
    assert out.counters["taker_orders"] == 1


def test_no_flatten_keeps_position():
    rows = base_book() + [trade(50, ASK, 100, 1.0)]
    out, _ = run(rows, once(Quotes(bid_price=101, bid_qty=1.0)), flatten_at_episode_end=False)
    assert len(out.fills) == 1 and out.steps.position.iloc[-1] == 1.0


def test_unchanged_quote_keeps_order_and_changed_quote_replaces():
    rows = base_book()
    same, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=1.0)))
    assert same.counters["orders_submitted"] == 1
    moving, _ = run(rows, lambda s: Quotes(bid_price=100 - (s.step % 2), bid_qty=1.0))
    n = len(moving.steps)
    assert moving.counters["orders_submitted"] == n
    assert moving.counters["orders_cancelled"] == n  # n - 1 replaced + the last at episode end


def test_queue_depletion_by_cancels_moves_us_to_the_front():
    # 5 lots ahead; the level shrinks to 1 lot by cancellations (no trades): even the conservative model
    # clips the queue ahead to the level size, so a trade of 2 lots at our price then fills us
    rows = base_book(bq=5.0) + [book(20, BID, 100, 1.0), trade(30, ASK, 100, 2.0)]
    out, _ = run(rows, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="conservative")
    assert len(out.fills) == 1 and out.fills.ts[0] == ms(30)
    kept = base_book(bq=5.0) + [trade(30, ASK, 100, 2.0)]  # same trade without the depletion: 3 still ahead
    out, _ = run(kept, first_step(Quotes(bid_price=100, bid_qty=1.0)), queue_model="conservative")
    assert len(out.fills) == 0
