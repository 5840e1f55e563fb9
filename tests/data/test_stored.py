"""StoredMarket: a cached market read a row group at a time equals the events that were written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data import loading, stored
from cmm_bt.data.schema import EVENT_COLUMNS, Instrument
from cmm_bt.data.stored import StoredMarket, StoredPart


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 10_007
    ts = np.cumsum(rng.integers(0, 1000, n))
    return pd.DataFrame({"exch_ts": ts, "local_ts": ts + rng.integers(0, 50, n), "ev": rng.integers(0, 3, n).astype("int8"),
                         "side": rng.choice([-1, 1], n).astype("int8"), "price": rng.integers(1, 10**6, n),
                         "qty": rng.random(n)})


def _stored(frame, tmp_path, monkeypatch, parts=2) -> StoredMarket:
    monkeypatch.setattr(loading, "ROW_GROUP_ROWS", 1000)
    out = []
    for i, piece in enumerate(np.array_split(np.arange(len(frame)), parts)):
        info = loading._write_events(frame.iloc[piece].reset_index(drop=True), tmp_path / f"p{i}.parquet")
        out.append(StoredPart(tmp_path / f"p{i}.parquet", info["sha256"], tuple(tuple(g) for g in info["groups"])))
    return StoredMarket(out, Instrument("X", 0.01), [], {})


def test_row_groups_read_back_as_the_events(frame, tmp_path, monkeypatch):
    m = _stored(frame, tmp_path, monkeypatch)
    chunks = list(m.chunks())
    assert len(chunks) == 12 and max(len(c) for c in chunks) == 1000  # 2 parts of 5,004 / 5,003 rows
    assert {c: str(t) for c, t in m.events.dtypes.items()} == EVENT_COLUMNS
    pd.testing.assert_frame_equal(m.events, frame)
    assert (m.start_ns, m.end_ns) == (frame["exch_ts"].iloc[0], frame["exch_ts"].iloc[-1])


def test_a_span_reads_only_its_events(frame, tmp_path, monkeypatch):
    m = _stored(frame, tmp_path, monkeypatch)
    ts = frame["exch_ts"].to_numpy()
    lo, hi = int(ts[2500]) + 1, int(ts[7100])
    sub = m.between(lo, hi)
    want = frame[(frame["exch_ts"] >= lo) & (frame["exch_ts"] < hi)].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.concat(list(sub.chunks()), ignore_index=True), want)
    assert (sub.start_ns, sub.end_ns) == (want["exch_ts"].iloc[0], want["exch_ts"].iloc[-1])
    assert len(list(sub.chunks())) == 7  # part 0: groups 2-5 (of 6), part 1: groups 0-2 (of 6)
    assert sub.content_digest() != m.content_digest()
    with pytest.raises(IndexError):
        m.between(0, 1).start_ns


def test_reading_a_group_keeps_the_event_dtypes(frame, tmp_path, monkeypatch):
    m = _stored(frame, tmp_path, monkeypatch, parts=1)
    group = stored.read_group(m.parts[0].path, 3)
    pd.testing.assert_frame_equal(group, frame.iloc[3000:4000].reset_index(drop=True))


def test_a_stored_market_keeps_what_is_derived_from_its_events(frame, tmp_path, monkeypatch):
    """The price ladder and the episodes' first two-sided times are computed once per stored market (a run's
    stage context and its replay each need them); an in-memory market, whose events may change, recomputes."""
    from cmm_bt.data.schema import MarketData
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid

    m = _stored(frame, tmp_path, monkeypatch)
    calls = []
    assert m.derived("k", lambda: calls.append(1) or 7) == 7 and m.derived("k", lambda: calls.append(1) or 8) == 7
    assert calls == [1]
    reads = []
    real = StoredMarket.chunks
    monkeypatch.setattr(StoredMarket, "chunks", lambda self, columns=None: reads.append(1) or real(self, columns))
    config = EngineConfig(decision_interval_ms=1, episode_mode="fixed", episode_length_s=0.002)
    first = decision_grid(m, config)
    n = len(reads)
    assert n > 0
    again = decision_grid(m, config)
    assert len(reads) == n  # no pass over the data the second time
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    plain = MarketData(frame, m.instrument)
    assert plain.derived("k", lambda: 1) == 1 and plain.derived("k", lambda: 2) == 2
