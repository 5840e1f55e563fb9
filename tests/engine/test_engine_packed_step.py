"""The Python loop's kernel entry point ``step_packed`` (the state as one descriptor array) equals ``step``."""

from __future__ import annotations

import numpy as np
import pytest

from cmm_bt.components import NO_PRICE, DecisionState
from cmm_bt.engine import kernel as K
from cmm_bt.engine.loop import _grid, _episodes, _prepare
from cmm_bt.engine.synthetic import synthetic_market

from .engine_helpers import cfg


def _exchange(market, config, steps):
    prep = _prepare(market, config)
    return K.Exchange(prep.events, prep.ladder, lo=prep.lo, hi=prep.hi, instrument=market.instrument,
                      config=config, steps=steps)


def test_step_packed_equals_step_including_fill_log_growth(monkeypatch):
    monkeypatch.setattr(K.Exchange, "fill_capacity", 8)  # the fill log grows during the run
    market = synthetic_market(5000, seed=3)
    config = cfg(decision_interval_ms=200, position_limit=1e9, queue_model="power-prob")
    prep = _prepare(market, config)
    times, _, _ = _grid(prep, _episodes(market, config, None, None), config.decision_interval_ns)
    a, b = _exchange(market, config, len(times)), _exchange(market, config, len(times))
    rng = np.random.default_rng(0)
    kq, tq, bp, bq, ap, aq = -1, 0, NO_PRICE, 0.0, NO_PRICE, 0.0
    grew = 0
    for k, t in enumerate(times.tolist()):
        ra = K.step(*a.args, k, t, kq, tq, bp, bq, ap, aq)
        rb = K.step_packed(b.desc, k, t, kq, tq, bp, bq, ap, aq)
        assert ra == rb
        if ra[0] != K.OK:  # the fill log is full: grow it (new arrays, new descriptor) and retry
            assert ra[0] == K.NEED_FILL_SPACE
            a.check(ra[0]), b.check(rb[0])
            grew += 1
            ra = a.step(k, t)  # retried until the log is large enough
            while True:
                rb = K.step_packed(b.desc, k, t, -1, 0, NO_PRICE, 0.0, NO_PRICE, 0.0)
                if not b.check(rb[0]):
                    break
            assert ra == rb and ra[0] == K.OK
        # quote around the touch, crossing now and then, so orders rest, fill and get cancelled
        kq, tq = k, t
        bp, ap = int(ra[1]) - int(rng.integers(-1, 2)), int(ra[2]) + int(rng.integers(-1, 2))
        bq, aq = 1.0, 1.0
    assert grew > 0 and a.n_fills > 10
    for name in K.State._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_descriptor_names_each_array():
    market = synthetic_market(50, seed=1)
    ex = _exchange(market, cfg(decision_interval_ms=200), 10)
    d = ex.desc
    assert d.dtype == np.int64 and d.shape == (len(K.STATE_FIELDS) * K.DESC_WIDTH,)
    for i, (name, _) in enumerate(K.STATE_FIELDS):
        arr = getattr(ex, name)
        assert d[i * K.DESC_WIDTH] == arr.ctypes.data
        assert tuple(d[i * K.DESC_WIDTH + 1 : i * K.DESC_WIDTH + 1 + arr.ndim]) == arr.shape
    bad = ex.args._replace(st=ex.st.astype(np.float64))
    with pytest.raises(TypeError, match="st"):
        K.descriptor(bad)
    with pytest.raises(TypeError, match="rec"):
        K.descriptor(ex.args._replace(rec=np.zeros((4, K.N_REC * 2))[:, ::2]))


def test_decision_state_has_slots():
    s = DecisionState(1, 2, 100, 102, 1.0, 2.0, 0.0, 0.5)
    assert not hasattr(s, "__dict__") and s.mid == 101.0 and s.spread == 2 and s.signals == {}
    with pytest.raises(AttributeError):
        s.extra = 1
