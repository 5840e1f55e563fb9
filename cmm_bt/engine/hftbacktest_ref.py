"""Differential harness against the open-source reference backtester ``hftbacktest`` (2.4.x).

The same simple market maker runs in both engines with equivalent models (constant order latency,
power-probability queue model, no partial fills, value-proportional fees):

* every ``interval`` (100 ms) of local time, quote one bid and one ask of ``order_qty`` at
  ``mid -/+ half_spread_ticks``, both shifted by one tick *against* each ``skew_unit`` of local
  inventory (long -> lower quotes), clamped to stay passive against the local touch;
* an unchanged quote keeps its order (and queue position); a changed one is cancelled and replaced;
* no bid while the local position is ``>= max_position``, no ask while it is ``<= -max_position``.

:class:`ReferenceMM` is a plain :class:`~cmm_bt.components.ExecutionPolicy` driven by
:func:`cmm_bt.engine.loop.run_backtest`; :func:`run_hbt` runs the numba-jitted twin in hftbacktest.
``hftbacktest`` is an optional dependency (the ``bench`` extra) imported lazily here.

Data for hftbacktest comes from its own converter, ``hftbacktest.data.utils.binancefutures.convert``
(:func:`hbt_events_from_binance`); spot captures lack the transaction time ``T`` that converter
reads, so their lines are rewritten with ``T = E`` first (the rule the ``binance`` data plugin uses).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
from numba import njit
from pydantic import Field

from cmm_bt.components import NO_PRICE, DecisionState, ExecutionPolicy, Params, Quotes
from cmm_bt.engine.config import EngineConfig


@dataclass(frozen=True)
class MMSpec:
    """The strategy and models shared by both engines."""

    interval_ns: int = 100_000_000
    order_qty: float = 0.01
    half_spread_ticks: int = 2
    skew_unit: float = 0.01
    max_position: float = 0.1
    entry_latency_ns: int = 1_000_000
    response_latency_ns: int = 1_000_000
    queue_exponent: float = 3.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005


def quote_ticks(best_bid: int, best_ask: int, position: float, spec: MMSpec) -> tuple[int, int, bool, bool]:
    """``(bid, ask, want_bid, want_ask)`` in ticks: the rule both engines implement."""
    skew = int(round(position / spec.skew_unit))
    mid = 0.5 * (best_bid + best_ask)
    bid = min(int(math.floor(mid - spec.half_spread_ticks)) - skew, best_ask - 1)
    ask = max(int(math.ceil(mid + spec.half_spread_ticks)) - skew, best_bid + 1)
    return bid, ask, position < spec.max_position - 1e-9, position > -spec.max_position + 1e-9


@njit(cache=True)
def reference_quote(ts, best_bid, best_ask, bid_qty, ask_qty, position, progress, signals, params):
    """:func:`quote_ticks` as a compiled quoting function; ``params`` = order qty, half spread, skew unit,
    max position."""
    qty, half, unit, max_pos = params[0], params[1], params[2], params[3]
    skew = round(position / unit)
    mid = 0.5 * (best_bid + best_ask)
    bid = min(int(math.floor(mid - half)) - skew, best_ask - 1)
    ask = max(int(math.ceil(mid + half)) - skew, best_bid + 1)
    return (bid if position < max_pos - 1e-9 else NO_PRICE, qty,
            ask if position > -max_pos + 1e-9 else NO_PRICE, qty)


class ReferenceMM(ExecutionPolicy):
    """The differential-test market maker (see the module docstring)."""

    name: ClassVar[str] = "hbt-reference-mm"

    class Config(Params):
        order_qty: float = Field(0.01, gt=0, description="Quote size of each side.")
        half_spread_ticks: int = Field(2, ge=0, description="Distance of each quote from the mid, ticks.")
        skew_unit: float = Field(0.01, gt=0, description="Inventory that shifts both quotes by one tick.")
        max_position: float = Field(0.1, gt=0, description="No bid at or above +this, no ask at or below -this.")

    def __init__(self, config: "ReferenceMM.Config"):
        super().__init__(config)
        c = config
        self.spec = MMSpec(order_qty=c.order_qty, half_spread_ticks=c.half_spread_ticks, skew_unit=c.skew_unit,
                           max_position=c.max_position)

    @classmethod
    def from_spec(cls, spec: MMSpec) -> "ReferenceMM":
        """The policy quoting like ``spec`` (the sizes :func:`run_hbt` is given)."""
        return cls(cls.Config(order_qty=spec.order_qty, half_spread_ticks=spec.half_spread_ticks,
                              skew_unit=spec.skew_unit, max_position=spec.max_position))

    def quote(self, state: DecisionState) -> Quotes:
        bid, ask, wb, wa = quote_ticks(state.best_bid, state.best_ask, state.position, self.spec)
        q = self.spec.order_qty
        return Quotes(bid if wb else None, q, ask if wa else None, q)

    def compiled(self):
        sp = self.spec
        return reference_quote, np.array([sp.order_qty, sp.half_spread_ticks, sp.skew_unit, sp.max_position])


def aligned_start(market, data: np.ndarray, interval_ns: int) -> int:
    """The replay start (``run_backtest(start_ns=...)``) that puts our decision grid on hftbacktest's.

    hftbacktest's clock starts at its first row's exchange timestamp and steps every ``interval``
    (measured: its step times are ``≡ exch_ts[0]`` modulo the interval on every capture); our grid
    steps every interval from the session start, our first event's exchange time.  The two first
    events differ (its converter starts at the REST snapshot), so left alone the grids differ by a
    fraction of the interval (``x.x50`` against ``x.x04`` s on the July usdm pair), and a market maker
    that re-quotes at other instants follows another path (docs/engine.md, "Fill-by-fill trace").
    Starting our replay at the first instant with hftbacktest's phase compares the engines at the same
    decisions."""
    s = int(market.sessions[0][0]) if market.sessions else market.start_ns
    return s + (int(data["exch_ts"][0]) - s) % int(interval_ns)


def engine_config(spec: MMSpec = MMSpec(), **overrides) -> EngineConfig:
    """Our engine configured like :func:`run_hbt` (no flattening, real receive times, no exchange-side limit:
    the position cap lives in the strategy, as in hftbacktest)."""
    base = dict(
        decision_interval_ms=spec.interval_ns / 1e6, order_qty=spec.order_qty, position_limit=1e9,
        entry_latency_us=spec.entry_latency_ns / 1e3, response_latency_us=spec.response_latency_ns / 1e3,
        feed_latency_us=0.0, queue_model="power-prob", queue_exponent=spec.queue_exponent, partial_fills=False,
        maker_fee=spec.maker_fee, taker_fee=spec.taker_fee, post_only=True, flatten_at_episode_end=False,
    )
    base.update(overrides)
    return EngineConfig(**base)


# ------------------------------------------------------------------------------ hftbacktest side
def _ns_prefix(raw: bytes, sp: int) -> bytes:
    """The line's local timestamp as 19-digit nanoseconds (hftbacktest's converter slices 19 characters):
    µs (the 2023 captures) and ms prefixes are scaled up."""
    ts = int(raw[:sp])
    while ts < 10**17:  # µs (16 digits) or ms (13 digits) since 1970
        ts *= 1000
    return str(ts).encode()


def _spot_as_futures(lines: io.BufferedReader, out) -> None:
    """Rewrite capture lines so hftbacktest's futures converter reads them: local timestamps in ns,
    for spot ``T = E`` for depth diffs, ``X = MARKET`` for trades, drop ``bookTicker`` lines (no ``e``),
    and a REST snapshot (no time at all) takes the ``E`` of the message before it.  Other futures lines
    pass unchanged."""
    import json

    last_e = None
    for raw in lines:
        sp = raw.find(b" ")
        if sp <= 0:
            continue
        if sp != 19:
            prefix = _ns_prefix(raw, sp)
            raw, sp = prefix + raw[sp:], len(prefix)
        msg = json.loads(raw[sp + 1:])
        data = msg.get("data", msg)
        changed = False
        if "data" in msg and "e" not in data:
            continue  # spot bookTicker has no event type; the converter ignores that stream anyway
        if data.get("e") == "trade" and "X" not in data:
            data["X"] = "MARKET"  # spot trades carry no execution type; every one is a market trade
            changed = True
        if data.get("e") == "depthUpdate" and "T" not in data:
            data["T"] = data["E"]
            changed = True
        if "E" in data:
            last_e = data["E"]
        if "lastUpdateId" in msg and "T" not in msg:
            msg["T"] = last_e if last_e is not None else int(raw[:sp]) // 1_000_000
            changed = True
        out.write(raw if not changed else raw[: sp + 1] + json.dumps(msg, separators=(",", ":")).encode() + b"\n")


def hbt_events_from_binance(files: Sequence[str | Path], cache_dir: str | Path | None = None) -> np.ndarray:
    """Convert a Binance capture (a contiguous pair is concatenated) with hftbacktest's own converter.

    The result is cached as ``.npz`` in ``cache_dir`` when given (keyed by the file names and sizes).
    """
    from hftbacktest.data.utils import binancefutures

    files = [Path(f) for f in files]
    key = "_".join(f"{f.parent.name}-{f.name}-{f.stat().st_size}" for f in files).replace(".", "-")
    if cache_dir is not None:
        cached = Path(cache_dir) / f"hbt_{key}.npz"
        if cached.exists():
            return np.load(cached)["data"]
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "capture.gz"
        with gzip.open(joined, "wb", compresslevel=1) as out:
            for f in files:
                with gzip.open(f, "rb") as fh:
                    _spot_as_futures(fh, out)
        with contextlib.redirect_stdout(io.StringIO()):
            data = binancefutures.convert(str(joined), buffer_size=20_000_000)
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        np.savez(Path(cache_dir) / f"hbt_{key}.npz", data=data)
    return data


def hbt_asset(data: np.ndarray, tick_size: float, lot_size: float, spec: MMSpec = MMSpec(),
              contract_size: float | None = None):
    """An hftbacktest asset with the models of :func:`engine_config`: linear, or inverse (coin-margined)
    with ``contract_size`` (hftbacktest's ``InverseAsset``: value = contract_size * qty / price)."""
    from hftbacktest import BacktestAsset

    asset = BacktestAsset().data([data])
    asset = asset.inverse_asset(contract_size) if contract_size else asset.linear_asset(1.0)
    return (
        asset
        .constant_order_latency(spec.entry_latency_ns, spec.response_latency_ns)
        .power_prob_queue_model(spec.queue_exponent)
        .no_partial_fill_exchange()
        .trading_value_fee_model(spec.maker_fee, spec.taker_fee)
        .tick_size(tick_size)
        .lot_size(lot_size)
        .last_trades_capacity(0)
    )


_JIT: dict[str, object] = {}


def _hbt_functions():
    """The jitted hftbacktest strategies (compiled once per process)."""
    if _JIT:
        return _JIT["mm"], _JIT["replay"]
    from hftbacktest import GTX, LIMIT, NEW
    from numba import njit

    @njit
    def mm(hbt, interval, qty, half, unit, max_pos, contract_size, out):
        bid_id = np.uint64(0)
        ask_id = np.uint64(0)
        bid_px = 0
        ask_px = 0
        next_id = np.uint64(1)
        steps = 0
        while hbt.elapse(interval) == 0:
            hbt.clear_inactive_orders(0)
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb >= ba or bb < -(2**60) or ba > 2**60 or depth.best_bid_qty <= 0.0 or depth.best_ask_qty <= 0.0:
                continue
            steps += 1
            pos = hbt.position(0)
            skew = int(np.round(pos / unit))
            mid = 0.5 * (bb + ba)
            bid = min(int(np.floor(mid - half)) - skew, ba - 1)
            ask = max(int(np.ceil(mid + half)) - skew, bb + 1)
            want_b = pos < max_pos - 1e-9
            want_a = pos > -max_pos + 1e-9
            orders = hbt.orders(0)
            # bid side
            live = bid_id != 0 and bid_id in orders and orders.get(bid_id).status == NEW
            if not (live and want_b and bid_px == bid):
                if live:
                    hbt.cancel(0, bid_id, False)
                bid_id = np.uint64(0)
                if want_b:
                    bid_id = next_id
                    next_id += np.uint64(1)
                    bid_px = bid
                    hbt.submit_buy_order(0, bid_id, bid * depth.tick_size, qty, GTX, LIMIT, False)
            # ask side
            live = ask_id != 0 and ask_id in orders and orders.get(ask_id).status == NEW
            if not (live and want_a and ask_px == ask):
                if live:
                    hbt.cancel(0, ask_id, False)
                ask_id = np.uint64(0)
                if want_a:
                    ask_id = next_id
                    next_id += np.uint64(1)
                    ask_px = ask
                    hbt.submit_sell_order(0, ask_id, ask * depth.tick_size, qty, GTX, LIMIT, False)
            sv = hbt.state_values(0)
            out[0] = hbt.current_timestamp
            mark = 0.5 * (bb + ba) * depth.tick_size
            if contract_size > 0.0:  # InverseAsset.equity: -balance - contract_size * position / price - fee
                out[1] = -sv.balance - sv.fee - contract_size * sv.position / mark
            else:
                out[1] = sv.balance - sv.fee + sv.position * mark
            out[3] = sv.num_trades
            out[4] = sv.position
            out[5] = sv.fee
        out[2] = steps
        return True

    @njit
    def replay(hbt, interval, out):
        steps = 0
        while hbt.elapse(interval) == 0:
            steps += 1
            depth = hbt.depth(0)
            out[0] = depth.best_bid_tick
        out[2] = steps
        return True

    _JIT["mm"] = mm
    _JIT["replay"] = replay
    return mm, replay


@dataclass
class HbtResult:
    fills: int
    pnl: float
    position: float
    fees: float
    steps: int
    wall_s: float


def run_hbt(data: np.ndarray, tick_size: float, lot_size: float, spec: MMSpec = MMSpec(), *,
            replay_only: bool = False, contract_size: float | None = None) -> HbtResult:
    """Run the reference market maker (or a bare replay) in hftbacktest; the wall time covers building the
    backtest from the in-memory array and the jitted run (call once before timing: numba compiles).
    ``contract_size``: an inverse contract (PnL and fees in the coin), else linear."""
    import time

    from hftbacktest import HashMapMarketDepthBacktest

    mm, replay = _hbt_functions()
    out = np.zeros(6)
    t0 = time.perf_counter()
    hbt = HashMapMarketDepthBacktest([hbt_asset(data, tick_size, lot_size, spec, contract_size)])
    if replay_only:
        replay(hbt, spec.interval_ns, out)
    else:
        mm(hbt, spec.interval_ns, spec.order_qty, spec.half_spread_ticks, spec.skew_unit, spec.max_position,
           float(contract_size or 0.0), out)
    wall = time.perf_counter() - t0
    hbt.close()
    # state at the last decision step (as our steps table records it)
    return HbtResult(int(out[3]), float(out[1]), float(out[4]), float(out[5]), int(out[2]), wall)


__all__ = ["HbtResult", "MMSpec", "ReferenceMM", "aligned_start", "engine_config", "hbt_asset", "hbt_events_from_binance",
           "quote_ticks", "reference_quote", "run_hbt"]
