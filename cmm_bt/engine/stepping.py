"""Drive the engine one decision step at a time from outside: :class:`Replay` and :class:`Stepper`.

:func:`cmm_bt.engine.loop.run_backtest` owns its loop: it asks a policy for quotes.  A driver that
owns the loop itself (an environment that hands each step's market view to an agent and gets the
quotes back, an interactive tool) uses these two classes instead.  They call the *same* kernel entry
points (:func:`~cmm_bt.engine.kernel.step`, :func:`~cmm_bt.engine.kernel.advance`,
:func:`~cmm_bt.engine.kernel.quote`, :func:`~cmm_bt.engine.kernel.end_episode`) in the same order as
``run_backtest``, so an episode driven here with the quotes a policy would return is the engine's
episode: same fills, same account, same episode PnL (``tests/engine/test_stepping.py``).

* :class:`Replay` (read-only, shared): the prepared event arrays, the decision grid and the episodes
  of ``[start_ns, end_ns)`` exactly as ``run_backtest`` builds them, plus *snapshots* of the market
  state (both books and the event pointers) every ``snapshot_every`` grid steps and at every episode
  start, taken in one pass with no orders.  Our orders never change the replayed book, so the book at
  any time is the same whatever an agent did before.
* :class:`Stepper` (one per driver): its own order table, account and fill log.
  :meth:`Stepper.begin` starts an episode at *any* grid step (restore the nearest snapshot before it,
  replay the steps in between with no orders, inside numba), :meth:`Stepper.step` sends the current
  step's quotes and advances to the next step, :meth:`Stepper.finish` sends the last quotes and
  closes the episode like the engine does (cancel everything, flatten if asked).

Each :meth:`Stepper.begin` starts a fresh agent: no orders, no position, no cash, order ids from 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cmm_bt.components import NO_PRICE
from cmm_bt.data.schema import MarketData
from cmm_bt.engine import kernel as K
from cmm_bt.engine.compiled import POLICY_SIGNATURE, run_steps
from cmm_bt.engine.config import EngineConfig
from cmm_bt.engine.loop import _episodes, _grid, _prepare

#: The ``st`` slots that only the market moves (event pointers, last local prices, the event counter).
MARKET_SLOTS = np.array([K.S_EV, K.S_LEV, K.S_LAST_B, K.S_LAST_A, K.S_EVENTS], dtype=np.int64)
_NO_SIGNALS = np.zeros((0, 0))
_NO_SIGNALS.flags.writeable = False
_NO_PARAMS = np.zeros(0)


@njit(POLICY_SIGNATURE, cache=True)
def _no_quotes(ts, best_bid, best_ask, bid_qty, ask_qty, position, episode_progress, signals, params):
    return NO_PRICE, 0.0, NO_PRICE, 0.0


class Replay:
    """The decision grid, episodes and market snapshots of one span of a market (shared, read-only).

    :ivar times: local decision times (ns) of every episode, as :func:`~cmm_bt.engine.loop.decision_grid`.
    :ivar episode_ids: the episode of each grid step.
    :ivar episodes: ``(start_ns, end_ns, first_step, end_step)`` of each kept episode.
    """

    def __init__(self, market: MarketData, config: EngineConfig, start_ns: int | None = None, end_ns: int | None = None,
                 *, snapshot_every: int = 1024):
        self.config = config
        self.instrument = market.instrument
        self.prep = _prepare(market, config)
        self.times, self.episode_ids, self.episodes = _grid(self.prep, _episodes(market, config, start_ns, end_ns),
                                                            config.decision_interval_ns)
        self.times.flags.writeable = False
        self.snapshot_every = max(1, int(snapshot_every))
        self._snapshots()

    def __len__(self) -> int:
        return int(self.times.size)

    def exchange(self, steps: int) -> K.Exchange:
        """A fresh kernel state over this replay's events with ``steps`` rows of step records."""
        p = self.prep
        return K.Exchange(p.events, p.ladder, lo=p.lo, hi=p.hi, instrument=self.instrument, config=self.config,
                          steps=max(1, steps))

    def _snapshots(self) -> None:
        """One pass with no orders over every episode, saving the market state before each snapshot step."""
        every = self.snapshot_every
        starts: list[int] = []
        for _, _, k0, k1 in self.episodes:
            starts.extend(range(k0, k1, every))
        n = len(starts)
        ex = self.exchange(every)
        self.snap_steps = np.array(starts, dtype=np.int64)
        self.snap_books = np.empty((n, *ex.books.shape))
        self.snap_bests = np.empty((n, *ex.bests.shape), dtype=np.int64)
        self.snap_st = np.empty((n, MARKET_SLOTS.size), dtype=np.int64)
        j = 0
        for _, e, k0, k1 in self.episodes:
            for c in range(k0, k1, every):
                self.snap_books[j] = ex.books
                self.snap_bests[j] = ex.bests
                self.snap_st[j] = ex.st[MARKET_SLOTS]
                j += 1
                self.run_quiet(ex, c, min(c + every, k1))
            ex.advance(e - 1)
        self.initial_st = self.exchange(1).st.copy()

    def run_quiet(self, ex: K.Exchange, k0: int, k1: int) -> None:
        """Decision steps ``k0 .. k1 - 1`` with no orders, inside numba (records into ``ex.rec[0:]``)."""
        if k1 <= k0:
            return
        if ex.rec.shape[0] < k1 - k0:
            ex.rec = np.zeros((k1 - k0, K.N_REC))
            ex._pack()
        ex.st[K.S_STEP] = 0
        times = self.times[k0:k1].copy()  # writeable, as run_steps' signature wants
        while ex.check(run_steps(_no_quotes, _NO_PARAMS, _NO_SIGNALS, times, int(times[0]), 1.0, k1 - k0, *ex.args)):
            pass

    def snapshot_before(self, k: int) -> int:
        """Index of the last snapshot taken at or before grid step ``k``."""
        return int(np.searchsorted(self.snap_steps, k, side="right")) - 1

    def stepper(self) -> "Stepper":
        return Stepper(self)


class Stepper:
    """One agent driving the engine step by step over a :class:`Replay` (see the module doc).

    After :meth:`begin` and each :meth:`step` the *view* of the current step ``k`` is returned as
    ``(best_bid, best_ask, bid_qty, ask_qty, position)``: the local top of book (ticks) and the
    locally known position, exactly what ``run_backtest`` puts in :class:`~cmm_bt.components.DecisionState`.
    """

    def __init__(self, replay: Replay, capacity: int = 1024):
        self.replay = replay
        self.ex = replay.exchange(max(capacity, replay.snapshot_every))
        self.k = -1
        self.k_end = -1
        self.end_ns = 0
        self.start_equity = 0.0
        self._base = 0
        self._t_l = replay.times.tolist()

    # ---------------------------------------------------------------------------------- episodes
    def begin(self, k0: int, k_end: int, end_ns: int, episode: int = 0) -> tuple:
        """Start an episode whose decision steps are ``k0 .. k_end - 1`` and which closes at exchange time
        ``end_ns`` (``> times[k_end - 1]``); returns the view of step ``k0``."""
        r = self.replay
        if not (0 <= k0 < k_end <= len(r)) or end_ns <= self._t_l[k_end - 1]:
            raise ValueError(f"bad episode: steps {k0}..{k_end} of {len(r)}, end {end_ns}")
        ex = self.ex
        j = r.snapshot_before(k0)
        c = int(r.snap_steps[j])
        need = max(k0 - c, k_end - k0) + 1
        if ex.rec.shape[0] < need:
            ex.rec = np.zeros((need, K.N_REC))
            ex._pack()
        # a fresh agent on the market state of the snapshot
        ex.books[...] = r.snap_books[j]
        ex.bests[...] = r.snap_bests[j]
        ex.st[:] = r.initial_st
        ex.st[MARKET_SLOTS] = r.snap_st[j]
        ex.st[K.S_EPISODE] = episode
        ex.fl[: K.P_TV] = 0.0
        ex.o_i[:] = 0
        ex.o_f[:] = 0.0
        ex.rq[:] = 0
        ex.rec[:, K.R_BIDQUOTE:] = np.nan
        r.run_quiet(ex, c, k0)
        self.k, self.k_end, self.end_ns = k0, k_end, int(end_ns)
        self._base = k0
        t = self._t_l[k0]
        ex.advance(t)
        self.start_equity = ex.equity()
        v = ex.step(0, t)
        return v[1:]

    def step(self, bid_px: int, bid_qty: float, ask_px: int, ask_qty: float) -> tuple:
        """Send the current step's quotes (``NO_PRICE`` / qty 0: none) and advance to the next step;
        returns its view.  The current step must not be the episode's last (see :meth:`finish`)."""
        k = self.k
        if k + 1 >= self.k_end:
            raise RuntimeError("the episode's last step: call finish()")
        ex, b = self.ex, self._base
        t_l = self._t_l
        r = K.step(*ex.args, k + 1 - b, t_l[k + 1], k - b, t_l[k], bid_px, bid_qty, ask_px, ask_qty)
        if r[0] != K.OK:
            ex.check(r[0])
            r = ex.step(k + 1 - b, t_l[k + 1])
        self.k = k + 1
        return r[1:]

    def finish(self, bid_px: int, bid_qty: float, ask_px: int, ask_qty: float, flatten: bool | None = None) -> float:
        """Send the last step's quotes, advance to the episode's end and close it (cancel every order;
        flatten the position when ``flatten``, default the engine's ``flatten_at_episode_end``).
        Returns the episode PnL (equity now minus equity at the first step)."""
        ex = self.ex
        k = self.k
        ex.quote(k - self._base, self._t_l[k], bid_px, bid_qty, ask_px, ask_qty)
        ex.advance(self.end_ns - 1)
        flat = self.replay.config.flatten_at_episode_end if flatten is None else flatten
        if not ex.end_episode(self.end_ns, flat):
            raise RuntimeError(f"cannot flatten at {self.end_ns}: the exchange book is empty")
        self.k = self.k_end
        return self.equity() - self.start_equity

    # ------------------------------------------------------------------------------------- state
    @property
    def time(self) -> int:
        """Local time of the current step (ns)."""
        return self._t_l[self.k] if self.k < self.k_end else self.end_ns

    def equity(self) -> float:
        """Cash plus the exchange-side position at the exchange mid (the episode PnL's mark)."""
        return self.ex.equity()

    def exchange_mid(self) -> float:
        return self.ex.exchange_mid()

    @property
    def position(self) -> float:
        """The true (exchange-side) position."""
        return float(self.ex.fl[K.A_POS])

    @property
    def cash(self) -> float:
        return float(self.ex.fl[K.A_CASH])

    @property
    def fees(self) -> float:
        return float(self.ex.fl[K.A_FEES])

    @property
    def n_fills(self) -> int:
        return self.ex.n_fills

    def records(self) -> np.ndarray:
        """Rows ``R_*`` of the episode's steps so far (exchange position and cash, local top of book, quotes)."""
        return self.ex.rec[: self.k + 1 - self._base if self.k < self.k_end else self.k_end - self._base]

    def fills(self) -> tuple[np.ndarray, np.ndarray]:
        """The episode's fill log so far: ``(f_i [n, N_FI], f_f [n, N_FF])`` (columns ``FI_*`` / ``FF_*``)."""
        n = self.ex.n_fills
        return self.ex.f_i[:n], self.ex.f_f[:n]


__all__ = ["MARKET_SLOTS", "Replay", "Stepper"]
