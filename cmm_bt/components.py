"""Base classes of the component kinds that plugins register.

A component class carries ``name: ClassVar[str]`` and an inner ``Config`` pydantic model that
validates its ``params`` (unknown keys rejected).  Registration (see :mod:`cmm_bt.hookspecs`)
hands the *class* to the host; nothing heavy (torch, transformers) may be imported before the
class is instantiated.

The host's own kinds are ``data``, ``execution`` and ``reporter`` (:data:`HOST_KINDS`); plugins
declare further kinds (``cmm_bt_register_kinds``) with base classes of their own, and drive them
through the pipeline stages of the strategy sections they declare (:mod:`cmm_bt.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.data.schema import Instrument, MarketData
    from cmm_bt.pipeline import Products
    from cmm_bt.results import RunResult

#: "No order on this side" as an int64 price, for compiled quoting functions (:meth:`ExecutionPolicy.compiled`).
NO_PRICE: int = int(np.iinfo(np.int64).min)



class Params(BaseModel):
    """Base for component ``Config`` models: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """Common base: a registered name and a params model."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    class Config(Params):
        pass

    def __init__(self, config: "Component.Config"):
        self.config = config


# --------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SourcePart:
    """One piece of a dataset that is normalised and cached on its own (a session, a day's files).

    :ivar key: what names the piece among the source's parts (with ``files``' names, sizes and
        modification times it keys the piece's cache entry).
    :ivar files: the raw files it is made of.
    :ivar load: normalises the piece: a :class:`~cmm_bt.data.schema.MarketData` whose events all lie
        at or after the previous piece's.
    """

    key: str
    files: tuple[Path, ...]
    load: Callable[[], "MarketData"]


class DataSource(Component):
    """Turns raw files into a normalised :class:`~cmm_bt.data.schema.MarketData`.

    Raise :class:`~cmm_bt.errors.DataError` naming the file and row for bad input.
    """

    kind = "data"

    def parts(self, files: list[Path], instrument: "Instrument | None", data_root: Path) -> list[SourcePart]:
        """The dataset in time order as pieces normalised and cached one at a time: loading holds one
        piece in memory, and a piece whose files are unchanged is not normalised again (a new day of
        data normalises only that day).  Override where pieces are independent (each day's files start
        their own book); the default is one piece, :meth:`load` of every file."""
        return [SourcePart("all", tuple(files), lambda: self.load(files, instrument, data_root))]

    def load(self, files: list[Path], instrument: "Instrument | None", data_root: Path) -> "MarketData":
        """Load ``files`` (absolute paths, already resolved against ``data_root``, in order).

        :param instrument: the manifest's instrument, or None when the plugin derives it.
        :param data_root: the data root, for side files the plugin finds itself (e.g. contract
            metadata).
        """
        raise NotImplementedError


# ---------------------------------------------------------------------------------- execution
@dataclass(frozen=True, init=False)
class Quotes:
    """What a policy wants resting on the book after a decision step.

    Prices are integer ticks; ``None`` (or qty 0) means no order on that side.  A side whose price
    and qty are unchanged keeps its existing order (and its queue position); otherwise the engine
    cancels and replaces it.
    """

    bid_price: int | None = None
    bid_qty: float = 0.0
    ask_price: int | None = None
    ask_qty: float = 0.0

    def __init__(self, bid_price: int | None = None, bid_qty: float = 0.0, ask_price: int | None = None,
                 ask_qty: float = 0.0):
        # the generated __init__ of a frozen dataclass sets each field through object.__setattr__
        # (~0.5 µs for four, once per decision step of every Python policy); writing the instance
        # dict directly is the same state in ~0.2 µs
        d = self.__dict__
        d["bid_price"], d["bid_qty"], d["ask_price"], d["ask_qty"] = bid_price, bid_qty, ask_price, ask_qty


@dataclass(slots=True)
class DecisionState:
    """What a policy may know at a decision step (local view, after feed and response latency).

    :ivar ts: local decision time, ns.
    :ivar step: index of the decision step in the run.
    :ivar best_bid, best_ask: local best bid / ask in ticks (may be equal to the other side's
        last value when the book is one-sided).
    :ivar bid_qty, ask_qty: quantity at the local best levels.
    :ivar position: inventory known locally (fills reported after the response latency).
    :ivar episode_progress: fraction of the current episode elapsed, in [0, 1].
    :ivar signals: per-step model outputs computed before the replay (e.g. ``pred_mid``),
        by name; empty when the strategy has no models.

    The engine builds one per decision step (``slots``: no per-instance ``__dict__``, half the
    construction time of a plain dataclass on the per-step path).
    """

    ts: int
    step: int
    best_bid: int
    best_ask: int
    bid_qty: float
    ask_qty: float
    position: float
    episode_progress: float
    signals: Mapping[str, float] = field(default_factory=dict)

    @property
    def mid(self) -> float:
        return 0.5 * (self.best_bid + self.best_ask)

    @property
    def spread(self) -> int:
        return self.best_ask - self.best_bid


@dataclass
class RunContext:
    """Facts an execution policy may use when it is built and fitted.

    :ivar train: the training split's market data.
    :ivar products: the run's pipeline products by type (e.g. a trained model), or None.
    """

    instrument: "Instrument"
    decision_interval_ns: int
    position_limit: float
    order_qty: float
    train: "MarketData | None" = None
    extra: dict[str, Any] = field(default_factory=dict)
    products: "Products | None" = None


class ExecutionPolicy(Component):
    """Turns the local market view (and model signals) into quotes at each decision step."""

    kind = "execution"

    def fit(self, context: RunContext) -> None:
        """Estimate parameters from ``context.train`` (the training split); default: nothing."""

    def quote(self, state: DecisionState) -> Quotes:
        raise NotImplementedError

    def fitted_parameters(self) -> dict[str, float]:
        """What :meth:`fit` estimated (e.g. σ, A, k), written to ``metrics.json`` as ``fitted_<name>``
        and shown in the report; default: nothing."""
        return {}

    def compiled(self) -> "tuple[Callable, np.ndarray] | None":
        """Optional numba fast path: ``(fn, params)``, or None (the default: the engine calls :meth:`quote`).

        ``fn`` is a ``numba.njit`` function ``fn(ts, best_bid, best_ask, bid_qty, ask_qty, position,
        episode_progress, signals, params) -> (bid_price, bid_qty, ask_price, ask_qty)`` (int64 ticks and
        float64 quantities; arguments as in :class:`DecisionState`, ``signals`` the step's signal values in
        column order, ``params`` this float64 array; a side without an order has price ``NO_PRICE`` or
        qty <= 0).  It must quote exactly like :meth:`quote`.  Without per-quote / per-fill hooks the
        engine then runs whole episodes inside numba (``decision_latency_ns`` is -1: not measured).
        """
        return None

    def quote_batch(self, arrays: dict[str, np.ndarray]) -> None:
        """Optional vectorised fast path; not used by the engine yet."""
        raise NotImplementedError(f"{self.name}: no vectorised quoting")


# ------------------------------------------------------------------------------------ reporter
class Reporter(Component):
    """Renders a finished run (terminal, files, ...)."""

    kind = "reporter"

    def report(self, result: "RunResult", console: "Console") -> None:
        raise NotImplementedError

    def write_files(self, result: "RunResult", folder: Path) -> None:
        """Files this reporter adds to the run folder, written into ``folder``: the run folder while it is
        still a temporary one, so they are in it once it appears complete.  Default: none."""


#: The kinds the host itself drives, and their base classes.
HOST_KINDS: dict[str, type[Component]] = {
    "data": DataSource,
    "execution": ExecutionPolicy,
    "reporter": Reporter,
}
