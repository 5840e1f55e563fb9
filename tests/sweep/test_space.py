"""--param specs, grid and random expansion, and the -o strings of trial values."""

from __future__ import annotations

import pytest

from cmm_bt.config.loader import apply_overrides
from cmm_bt.errors import CmmBtError
from cmm_bt.sweep.space import corner_points, grid_points, override_for, parse_param, parse_params, random_points, split_values


def test_list_values_are_parsed_like_overrides():
    p = parse_param("execution.params.gamma=0.01,0.1,1")
    assert (p.key, p.kind, p.choices) == ("execution.params.gamma", "choice", (0.01, 0.1, 1))
    assert parse_param("execution.params.horizon=fixed,episode").choices == ("fixed", "episode")
    assert parse_param("engine.partial_fills=true,false").choices == (True, False)


def test_commas_inside_brackets_and_quotes_do_not_split():
    assert split_values("[1, 2],[3,4],'a,b'") == ["[1, 2]", "[3,4]", "'a,b'"]
    assert parse_param("k=[1, 2],[3]").choices == ([1, 2], [3])


def test_ranges():
    p = parse_param("execution.params.gamma=log(0.001,1)")
    assert (p.kind, p.low, p.high) == ("log", 0.001, 1.0)
    assert parse_param("a=uniform(-1,1)").kind == "uniform"
    assert parse_param("a=int(1,4)").grid_values() == [1, 2, 3, 4]
    assert parse_param("a=log(0.01,1,3)").choices == (0.01, 0.1, 1.0)
    assert parse_param("a=uniform(0,1,5)").choices == (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("gamma", "KEY=V1,V2"),
        ("=1,2", "KEY=V1,V2"),
        ("a=log(0,1)", "LO > 0"),
        ("a=log(2,1)", "LO < HI"),
        ("a=log(x,1)", "numbers"),
        ("a=int(1.5,3)", "two integers"),
        ("a=uniform(0,1,1)", "N >= 2"),
        ("a=1,,2", "empty value"),
        ("a=1,1", "twice"),
        ("a..b=1", "bad key"),
    ],
)
def test_bad_specs_name_the_param(text, message):
    with pytest.raises(CmmBtError, match=message) as err:
        parse_param(text)
    assert "--param" in str(err.value)


def test_same_key_twice_is_refused():
    with pytest.raises(CmmBtError, match="swept twice"):
        parse_params(["a=1,2", "a=3"])


def test_grid_is_the_full_product_first_key_slowest():
    params = parse_params(["a=1,2", "b=x,y,z"])
    points = grid_points(params)
    assert points == [{"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]


def test_grid_refuses_a_continuous_range():
    with pytest.raises(CmmBtError, match="continuous range"):
        grid_points(parse_params(["a=log(0.1,1)"]))


def test_random_is_seeded_and_without_replacement_on_a_discrete_space():
    params = parse_params(["a=1,2,3", "b=int(0,3)"])
    first = random_points(params, 8, seed=3)
    assert first == random_points(params, 8, seed=3)
    assert first != random_points(params, 8, seed=4)
    assert len({(p["a"], p["b"]) for p in first}) == 8
    assert len(random_points(params, 100, seed=0)) == 12  # at most the grid


def test_random_ranges_stay_inside_their_bounds():
    params = parse_params(["g=log(0.001,10)", "h=uniform(5,6)"])
    points = random_points(params, 50, seed=0)
    assert len(points) == 50
    assert all(0.001 <= p["g"] <= 10 and 5 <= p["h"] <= 6 for p in points)


@pytest.mark.parametrize("value", [0.1, 1e-05, 3, "fixed", True, [1, 2], {"a": 1}, "123", "true"])
def test_override_for_round_trips(value):
    assert apply_overrides({}, [override_for("x.y", value)]) == {"x": {"y": value}}


def test_corner_points_cover_every_value_and_both_ends():
    params = parse_params(["a=1,2,3", "g=log(0.01,1)"])
    pts = corner_points(params)
    assert {p["a"] for p in pts} == {1, 2, 3}
    assert {p["g"] for p in pts} == {0.01, 1.0}
