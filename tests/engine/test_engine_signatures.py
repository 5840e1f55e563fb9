"""The kernel's entry points take the replay state in the order of ``STATE_FIELDS``; ``Exchange.args`` and
``run_steps``' explicit numba signature are derived from it; queue models come from their registry."""

from __future__ import annotations

import inspect

import numba
import numpy as np
import pytest

from cmm_bt.data.schema import Instrument
from cmm_bt.engine import kernel as K
from cmm_bt.engine import queue as Q
from cmm_bt.engine.book import B_ASK, B_ASK_HI, B_ASK_LO, B_BID, B_BID_HI, B_BID_LO, N_BESTS, new_bests
from cmm_bt.engine.compiled import RUN_FIELDS, run_steps
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import _prepare
from cmm_bt.engine.synthetic import synthetic_market

STATE = [name for name, _ in K.STATE_FIELDS]
ENTRY_POINTS = [K.step, K.advance, K.quote, K.end_episode, K.advance_step]


def params(fn) -> list[str]:
    return list(inspect.signature(fn.py_func).parameters)


def test_state_tuple_is_the_field_list():
    assert list(K.State._fields) == STATE
    assert K.STATE_TYPES == tuple(t for _, t in K.STATE_FIELDS)


@pytest.mark.parametrize("fn", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_entry_points_take_the_state_first(fn):
    assert params(fn)[: len(STATE)] == STATE


def test_run_steps_signature_is_derived_from_the_fields():
    names = [name for name, _ in RUN_FIELDS] + STATE
    assert params(run_steps) == names
    [sig] = run_steps.nopython_signatures
    assert sig.return_type == numba.int64
    assert tuple(sig.args) == tuple(t for _, t in RUN_FIELDS + K.STATE_FIELDS)


def test_exchange_packs_arrays_of_the_declared_types():
    market = synthetic_market(2_000, seed=1)
    config = EngineConfig()
    prep = _prepare(market, config)
    ex = K.Exchange(prep.events, prep.ladder, lo=prep.lo, hi=prep.hi, instrument=Instrument("X", 1.0), config=config,
                    steps=10)
    assert isinstance(ex.args, K.State)
    for name, typ in K.STATE_FIELDS:
        assert numba.typeof(getattr(ex.args, name)) == typ, name
    ex.grow_fills()  # repacked: same fields, the new fill log
    assert ex.args.f_i is ex.f_i and ex.args.f_i.shape[0] == 2 * K.Exchange.fill_capacity


def test_bests_slots():
    n = 7
    b = new_bests(n)
    assert b.shape == (N_BESTS,)
    assert (b[B_BID], b[B_ASK], b[B_BID_LO], b[B_BID_HI], b[B_ASK_LO], b[B_ASK_HI]) == (-1, n, n, -1, n, -1)


def test_queue_model_codes_follow_the_registry():
    assert [Q.queue_model_code(name) for name in Q.QUEUE_MODELS] == list(range(len(Q.QUEUE_MODELS)))
    schema = EngineConfig.model_json_schema()["properties"]["queue_model"]
    assert schema["enum"] == list(Q.QUEUE_MODELS)
    for name, model in Q.QUEUE_MODELS.items():
        assert model.description in schema["description"]


@pytest.mark.parametrize("name", list(Q.QUEUE_MODELS))
@pytest.mark.parametrize("front,prev,new,cum", [(10.0, 15.0, 9.0, 0.0), (3.0, 15.0, 11.0, 4.0), (4.0, 4.0, 30.0, 0.0),
                                                (-1.0, 6.0, 2.0, 1.0), (0.0, 0.0, 0.0, 0.0)])
def test_kernel_runs_the_registered_function(name, front, prev, new, cum):
    o_f = np.zeros((1, K.N_OF))
    o_f[0, K.OF_FRONT] = front
    o_f[0, K.OF_CUM] = cum
    K._queue_depth(o_f, 0, prev, new, Q.queue_model_code(name), 3.0)
    assert o_f[0, K.OF_FRONT] == pytest.approx(Q.QUEUE_MODELS[name].function(front, prev, new, cum, 3.0), rel=1e-12)
    assert o_f[0, K.OF_CUM] == 0.0


def test_a_new_model_is_one_function_in_the_dispatch():
    def halve_ahead(front, prev, new, cum, exponent):
        return min(0.5 * front, new)

    dispatch = K._queue_dispatch((Q.conservative, halve_ahead))
    call = numba.njit(lambda code, front, new: dispatch(code, front, 20.0, new, 0.0, 3.0))
    assert call(0, 10.0, 8.0) == 8.0
    assert call(1, 10.0, 8.0) == 5.0
