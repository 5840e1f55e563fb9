"""The synthetic order-book simulator: determinism, schema, an uncrossed book and stylised facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
import yaml

from cmm_bt.data.schema import BOOK, CLEAR, EVENT_COLUMNS, TRADE, Instrument
from cmm_bt.errors import ConfigError
from cmm_bt.data.topofbook import NO_PRICE
from cmm_bt.data.topofbook import top_of_book as replay_top
from cmm_bt_plugins.data.synthetic import SyntheticBook


def top_of_book(events: pd.DataFrame) -> pd.DataFrame:
    bb, ba, bq, aq = replay_top(events)
    return pd.DataFrame({"best_bid": bb, "best_ask": ba, "bid_qty": bq, "ask_qty": aq})

REPO = Path(__file__).resolve().parents[3]

# Short sessions with frequent regime switches, so both regimes appear in a few minutes of data.
SHORT = dict(sessions=3, session_seconds=600, gap_seconds=60, switch_to_high_per_s=1 / 90, switch_to_low_per_s=1 / 90)


def _load(**params):
    return SyntheticBook(SyntheticBook.Config(**params)).load([], None, None)


@pytest.fixture(scope="module")
def short():
    return _load(seed=1, **SHORT)


@pytest.fixture(scope="module")
def short_top(short):
    return top_of_book(short.events)


def test_same_seed_identical_other_seed_different():
    a = _load(seed=5, sessions=1, session_seconds=300)
    b = _load(seed=5, sessions=1, session_seconds=300)
    c = _load(seed=6, sessions=1, session_seconds=300)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert a.meta["regimes"] == b.meta["regimes"]
    assert len(a.events) != len(c.events) or not a.events.equals(c.events)


def test_schema_sessions_and_timestamps(short):
    ev = short.events
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert {c: str(t) for c, t in ev.dtypes.items()} == EVENT_COLUMNS
    assert set(np.unique(ev["ev"])) == {BOOK, TRADE, CLEAR}
    assert set(np.unique(ev["side"])) == {-1, 1}
    ts, local = ev["exch_ts"].to_numpy(), ev["local_ts"].to_numpy()
    assert (np.diff(ts) >= 0).all() and (np.diff(local) >= 0).all()
    latency = local - ts
    assert latency.min() >= 0.5e6 and latency.max() <= 2.0e6
    start = pd.Timestamp("2024-01-02T09:00:00Z").value
    assert short.sessions == [(start + k * 660 * 10**9, start + k * 660 * 10**9 + 600 * 10**9) for k in range(3)]
    # every event lies in a session, and each session opens with a CLEAR of both sides
    sid = np.searchsorted([s for s, _ in short.sessions], ts, side="right") - 1
    assert (ts < np.array([e for _, e in short.sessions])[sid]).all()
    clears = ev.index[ev["ev"] == CLEAR]
    assert len(clears) == 6 and list(ev.loc[clears, "exch_ts"][::2]) == [s for s, _ in short.sessions]
    book = ev[ev["ev"] == BOOK]
    assert (book["qty"] >= 0).all() and (ev.loc[ev["ev"] == TRADE, "qty"] > 0).all()
    assert short.instrument == Instrument(symbol="SYN", tick_size=0.01, multiplier=1.0)
    # prices stay near the 100.00 start (10,000 ticks)
    assert book["price"].between(9000, 11000).all()
    assert 10**4 < len(ev) < 10**6


def test_given_instrument_and_bad_input():
    inst = Instrument(symbol="XYZ", tick_size=0.5, multiplier=10.0)
    md = SyntheticBook(SyntheticBook.Config(sessions=1, session_seconds=30)).load([], inst, None)
    assert md.instrument is inst
    assert abs(md.events["price"].iloc[-1] - 200) < 50  # start_price 100 / tick 0.5
    with pytest.raises(ConfigError, match="files"):
        SyntheticBook(SyntheticBook.Config()).load([Path("x.csv")], None, None)
    with pytest.raises(pydantic.ValidationError):
        SyntheticBook.Config(sead=1)
    with pytest.raises(pydantic.ValidationError):
        SyntheticBook.Config(latency_min_ms=3, latency_max_ms=1)


@pytest.mark.parametrize("snapshot_ms", [0.0, 100.0])
def test_book_never_crossed(snapshot_ms):
    md = _load(seed=2, levels=5, snapshot_ms=snapshot_ms, **SHORT)
    top = top_of_book(md.events)
    two_sided = (top["best_bid"] != NO_PRICE) & (top["best_ask"] != NO_PRICE)
    assert two_sided.mean() > 0.99
    assert (top["best_ask"] - top["best_bid"])[two_sided].min() >= 1
    # depth: at most `levels` ticks from each side's best
    ev = md.events
    ev = ev[(ev.index > ev.index[ev["ev"] == CLEAR].max()) & (ev["ev"] == BOOK)]  # the last session
    last = ev.groupby(["side", "price"])["qty"].last()
    final = top.iloc[-1]
    bids = last.loc[1][last.loc[1] > 0].index
    asks = last.loc[-1][last.loc[-1] > 0].index
    assert bids.max() == final["best_bid"] and bids.min() > final["best_bid"] - 5
    assert asks.min() == final["best_ask"] and asks.max() < final["best_ask"] + 5


def test_snapshot_mode_publishes_the_same_book_at_each_snapshot():
    """Conflation changes only what is published: the RNG path and the book are the same."""
    params = dict(seed=3, sessions=1, session_seconds=120)
    full, snap = _load(**params), _load(snapshot_ms=250.0, **params)
    assert len(snap.events) < len(full.events)
    pd.testing.assert_frame_equal(
        full.events[full.events["ev"] == TRADE].reset_index(drop=True),
        snap.events[snap.events["ev"] == TRADE].reset_index(drop=True),
    )
    top_f, top_s = top_of_book(full.events), top_of_book(snap.events)
    s0 = full.sessions[0][0]
    grid = s0 + np.arange(1, 479) * 250_000_000
    i_f = np.searchsorted(full.events["exch_ts"].to_numpy(), grid, side="left") - 1
    i_s = np.searchsorted(snap.events["exch_ts"].to_numpy(), grid, side="right") - 1
    cols = ["best_bid", "best_ask", "bid_qty", "ask_qty"]
    np.testing.assert_array_equal(top_f[cols].to_numpy()[i_f], top_s[cols].to_numpy()[i_s])


def test_trades_at_or_through_the_touch_and_some_sweep(short, short_top):
    ev = short.events
    tr = np.flatnonzero(ev["ev"].to_numpy() == TRADE)
    before = short_top.iloc[tr - 1]
    px, side = ev["price"].to_numpy()[tr], ev["side"].to_numpy()[tr]
    at_or_through = np.where(side == 1, px >= before["best_ask"].to_numpy(), px <= before["best_bid"].to_numpy())
    assert at_or_through.all()
    # some market orders walk the book: a trade price beyond the touch seen before the order
    first = np.r_[True, ev["exch_ts"].to_numpy()[tr][1:] != ev["exch_ts"].to_numpy()[tr][:-1]]
    start_touch = np.where(side == 1, before["best_ask"], before["best_bid"])
    touch_of_order = pd.Series(np.where(first, start_touch, np.nan)).ffill().to_numpy()
    through = np.abs(px - touch_of_order) >= 1
    assert 0.005 < through.mean() < 0.3
    assert (side == 1).mean() == pytest.approx(0.5, abs=0.1)


def _grid(md, top, step_s):
    """Mid, spread, imbalance, regime and next mid change / volume on a regular grid."""
    ev = md.events
    ts = ev["exch_ts"].to_numpy()
    mid = 0.5 * (top["best_bid"].to_numpy() + top["best_ask"].to_numpy().astype(float))
    spread = (top["best_ask"] - top["best_bid"]).to_numpy()
    imb = ((top["bid_qty"] - top["ask_qty"]) / (top["bid_qty"] + top["ask_qty"])).to_numpy()
    vol = np.cumsum(np.where(ev["ev"].to_numpy() == TRADE, ev["qty"].to_numpy(), 0.0))
    rts, rv = np.array(md.meta["regimes"]).T
    out = []
    for s0, s1 in md.sessions:
        g = np.arange(s0 + 2 * 10**9, s1, int(step_s * 1e9))
        i = np.searchsorted(ts, g, side="right") - 1
        reg = rv[np.searchsorted(rts, g, side="right") - 1]
        out.append(pd.DataFrame({
            "regime": reg[:-1], "spread": spread[i][:-1], "imb": imb[i][:-1],
            "dmid": np.diff(mid[i]), "volume": np.diff(vol[i]),
        }))
    return pd.concat(out, ignore_index=True)


def test_stylised_facts(short, short_top):
    d = _grid(short, short_top, 1.0)
    by_regime = d.groupby("regime")
    assert set(by_regime.groups) == {0, 1} and by_regime.size().min() > 200
    var = by_regime["dmid"].var()
    assert var[1] > 2 * var[0]  # volatile regime moves the mid more
    spread = by_regime["spread"].mean()
    assert spread[1] > spread[0]  # and widens the spread
    assert by_regime["volume"].mean()[1] > 1.3 * by_regime["volume"].mean()[0]  # and trades more
    frac = d["spread"].value_counts(normalize=True)
    assert frac.loc[[1, 2, 3]].sum() > 0.9 and frac[frac.index >= 4].sum() > 0.002
    # spread is persistent; imbalance weakly predicts the next mid move
    assert d["spread"].autocorr(1) > 0.2
    corr = np.corrcoef(d["imb"], d["dmid"])[0, 1]
    assert 0.05 < corr < 0.6


def test_default_manifest_split_matches_sessions():
    manifest = yaml.safe_load((REPO / "datasets" / "synthetic.yaml").read_text())
    assert manifest["source"] == SyntheticBook.name and manifest["files"] == []
    md = _load(**manifest["params"])
    starts = [s for s, _ in md.sessions]
    assert len(starts) == 4
    assert pd.Timestamp(manifest["split"]["validation_start"]).value == starts[2]
    assert pd.Timestamp(manifest["split"]["test_start"]).value == starts[3]
    assert 10**5 < len(md.events) < 10**6
