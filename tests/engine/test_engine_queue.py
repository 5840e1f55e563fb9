"""The queue-position formulas (hftbacktest's RiskAdverse and Prob queue models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmm_bt.engine import kernel as K


def depth(front, prev, new, model, n=3.0, cum=0.0):
    o_f = np.zeros((1, 4))
    o_f[0, K.OF_FRONT] = front
    o_f[0, K.OF_CUM] = cum
    K._queue_depth(o_f, 0, prev, new, model, n)
    return o_f[0, K.OF_FRONT], o_f[0, K.OF_CUM]


def test_conservative_only_clips_to_level():
    assert depth(10, 15, 9, 0)[0] == 10 - 1  # min(10, 9)
    assert depth(10, 15, 12, 0)[0] == 10


@pytest.mark.parametrize("front,back,chg", [(10, 5, 6), (3, 12, 4), (6, 6, 2)])
def test_power_prob_formula(front, back, chg):
    prev = front + back
    fb, ff = back**3, front**3
    p_behind = fb / (fb + ff)
    expected = min(front - (1 - p_behind) * chg + min(back - p_behind * chg, 0.0), prev - chg)
    assert depth(front, prev, prev - chg, 1)[0] == pytest.approx(expected)


def test_power_prob_front_heavy_queue_loses_more_ahead():
    # more ahead than behind -> most of a cancellation is attributed to the front
    f_front_heavy = depth(10, 15, 9, 1)[0]  # front 10, back 5, 6 cancelled
    assert f_front_heavy == pytest.approx(10 - 6 * 1000 / 1125)


def test_log_prob_formula():
    front, back, chg = 10.0, 5.0, 6.0
    p = math.log1p(back) / (math.log1p(back) + math.log1p(front))
    assert depth(front, 15, 9, 2)[0] == pytest.approx(front - (1 - p) * chg)


def test_prob_model_discounts_trades_already_counted():
    # 4 lots traded at our level (front already reduced from 10 to 6); the level then shows 11 (15 - 4):
    # no cancellation left to attribute, the front stays 6 and the trade accumulator resets
    front, cum = depth(6, 15, 11, 1, cum=4.0)
    assert front == 6 and cum == 0.0


def test_increase_never_moves_us_back():
    assert depth(4, 4, 30, 1)[0] == 4


def test_queue_exec_rounds_to_lots():
    assert K._queue_exec(0.0, 1.0) == 0.0
    assert K._queue_exec(-0.5, 1.0) == 0.0
    assert K._queue_exec(-2.0, 1.0) == 2.0
    assert K._queue_exec(-0.003, 0.001) == pytest.approx(0.003)
