"""The host's plugin-facing types (cmm_bt/components.py)."""

from __future__ import annotations

import dataclasses

import pytest

from cmm_bt.components import Quotes


def test_quotes_is_a_frozen_dataclass_with_its_fields_in_order():
    q = Quotes(100, 1.5, 102, 2.5)
    assert q == Quotes(bid_price=100, bid_qty=1.5, ask_price=102, ask_qty=2.5)
    assert dataclasses.astuple(q) == (100, 1.5, 102, 2.5)
    assert Quotes() == Quotes(None, 0.0, None, 0.0)
    assert Quotes(ask_price=7, ask_qty=1.0) == Quotes(None, 0.0, 7, 1.0)
    assert hash(q) == hash(Quotes(100, 1.5, 102, 2.5)) and q != Quotes(100, 1.5, 103, 2.5)
    assert repr(q) == "Quotes(bid_price=100, bid_qty=1.5, ask_price=102, ask_qty=2.5)"
    assert dataclasses.replace(q, ask_price=None) == Quotes(100, 1.5, None, 2.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.bid_price = 99
    with pytest.raises(TypeError):
        Quotes(1, 1.0, 2, 1.0, 5)


def test_a_subclass_of_quotes_gets_its_own_fields():
    @dataclasses.dataclass(frozen=True)
    class Tagged(Quotes):
        tag: str = ""

    t = Tagged(100, 1.0, 102, 1.0, "x")
    assert (t.bid_price, t.ask_qty, t.tag) == (100, 1.0, "x")
