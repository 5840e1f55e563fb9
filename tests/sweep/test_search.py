"""grid / random / tpe behind one ask-tell interface; tpe is Optuna's seeded TPE."""

from __future__ import annotations

import pytest

from cmm_bt.errors import CmmBtError
from cmm_bt.sweep.search import make_search
from cmm_bt.sweep.space import parse_params


def _drain(search, value_of):
    points = []
    while (asked := search.ask()) is not None:
        ticket, point = asked
        points.append(point)
        search.tell(ticket, value_of(point))
    return points


def test_grid_asks_every_point_once():
    s = make_search("grid", parse_params(["a=1,2", "b=3,4"]), trials=None, seed=0, direction="max")
    assert _drain(s, lambda p: 0.0) == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


def test_contradictory_options_are_usage_errors():
    params = parse_params(["a=1,2"])
    with pytest.raises(CmmBtError, match="--trials is for"):
        make_search("grid", params, trials=3, seed=0, direction="max")
    with pytest.raises(CmmBtError, match="needs --trials"):
        make_search("random", params, trials=None, seed=0, direction="max")
    with pytest.raises(CmmBtError, match="unknown search"):
        make_search("bayes", params, trials=3, seed=0, direction="max")


def test_tpe_is_seeded_and_moves_towards_the_optimum():
    params = parse_params(["x=uniform(-5,5)", "k=a,b"])
    f = lambda p: -((p["x"] - 2.0) ** 2) + (1.0 if p["k"] == "b" else 0.0)  # noqa: E731
    a = _drain(make_search("tpe", params, trials=30, seed=1, direction="max"), f)
    b = _drain(make_search("tpe", params, trials=30, seed=1, direction="max"), f)
    assert a == b and len(a) == 30
    assert all(-5 <= p["x"] <= 5 and p["k"] in ("a", "b") for p in a)
    late = a[-10:]
    assert sum(abs(p["x"] - 2.0) for p in late) / 10 < sum(abs(p["x"] - 2.0) for p in a[:10]) / 10


def test_tpe_asks_several_before_any_tell_and_counts_trials_found_done():
    s = make_search("tpe", parse_params(["x=uniform(0,1)"]), trials=5, seed=0, direction="min")
    assert s.add_done({"x": 0.5}, 1.0)
    assert not s.add_done({"x": 7.0}, 1.0)  # outside the space: not told
    in_flight = [s.ask() for _ in range(4)]
    assert all(a is not None for a in in_flight) and s.ask() is None  # 1 done + 4 asked = budget
    for ticket, _ in in_flight:
        s.tell(ticket, None)  # failed trials are told as FAIL
    assert len(s.study.trials) == 5
