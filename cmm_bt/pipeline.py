"""The model pipeline: stages with declared inputs and typed products, run by one small runner.

A strategy's plugin sections (``cmm_bt_register_sections``) contribute :class:`Stage` objects.  A
stage *provides* one product type (a dataclass) and *requires* products of other stages by type,
so plugins talk through typed products, never through string keys.  The runner

* wires each requirement to the one stage that provides that type (a ``fallback`` stage steps
  aside when another stage provides the same type);
* keys every stage by its identity (config), the run's data and its inputs' keys, and keeps a
  cacheable stage's product on disk under that key (:class:`~cmm_bt.stage_cache.StageCache`:
  atomic, locked), so a second run or a concurrent worker loads it instead of recomputing;
* runs only what the requested products need, timing each stage.

The engine consumes the :class:`Signals` product, if the plan has one: per-decision-step model
outputs, plus the metrics and tables the model stage reports about itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, TypeVar

from cmm_bt.errors import ConfigError
from cmm_bt.stage_cache import StageCache

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from rich.console import Console

    from cmm_bt.data.schema import MarketData
    from cmm_bt.run import RunSpec

P = TypeVar("P")


# ------------------------------------------------------------------------------------ products
@dataclass
class Signals:
    """What a model pipeline hands the engine (and the report).

    :ivar frame: one row per replay decision step, one column per signal (``DecisionState.signals``).
    :ivar metrics: flat keys for ``metrics.json`` (prediction errors, model size, ...).  The keys
        ``decision_latency_us_p50/p99`` replace the engine's (the per-decision latency the model
        would have live); the engine's value is then kept as ``policy_latency_us_p50/p99``.
    :ivar tables: extra tables written to the run folder as parquet.
    :ivar quiet_tables: names of ``tables`` that generic reporters do not print.
    """

    frame: "pd.DataFrame"
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, "pd.DataFrame"] = field(default_factory=dict)
    quiet_tables: tuple[str, ...] = ()


class RunOutputs(Protocol):
    """What any product may add to the run (every method optional; the host looks each one up).

    ``run_metrics()``: flat keys for ``metrics.json`` (a key the engine computes is an error, except
    :data:`cmm_bt.api.OVERRIDABLE_METRICS`); ``run_tables()``: tables written as ``<name>.parquet`` and
    printed by the rich report; ``run_files()``: ``{file name: bytes}`` written into the run folder
    (e.g. a PNG).  All are written before the folder is renamed into place.
    """

    def run_metrics(self) -> dict[str, float]: ...

    def run_tables(self) -> dict[str, "pd.DataFrame"]: ...

    def run_files(self) -> dict[str, bytes]: ...


class Products:
    """The products of a pipeline run, looked up by type."""

    def __init__(self, items: Mapping[type, Any] | None = None):
        self._items: dict[type, Any] = dict(items or {})

    def values(self) -> list[Any]:
        """Every product, in the order the pipeline made them."""
        return list(self._items.values())

    def get(self, kind: type[P]) -> P | None:
        """The product of type ``kind``, or None when the plan has none."""
        return self._items.get(kind)

    def __contains__(self, kind: type) -> bool:
        return kind in self._items

    def __len__(self) -> int:
        return len(self._items)


# -------------------------------------------------------------------------------------- stages
@dataclass
class StageContext:
    """What every stage may read.

    :ivar run: the validated run (strategy, dataset, splits, seed, console).
    :ivar market: the whole dataset (all splits: fit on ``run.splits["train"]`` only).
    :ivar grid: local decision times (ns) of the replay split.
    :ivar data_key: hash of the dataset's content, its splits and the engine settings.
    :ivar replay_key: ``data_key`` plus the replay split and its grid.
    """

    run: "RunSpec"
    market: "MarketData"
    grid: "np.ndarray"
    data_key: str
    replay_key: str
    cache: StageCache
    work_dir: Path | None = None

    @property
    def console(self) -> "Console":
        return self.run.console

    @property
    def seed(self) -> int:
        return self.run.seed


class Stage:
    """One step of a model pipeline.

    Subclasses set ``provides`` (the product type), ``requires`` (argument name -> product type,
    passed to :meth:`run` as keyword arguments) and ``optional`` (the same, None when no stage
    provides it); :meth:`identity` returns what, besides its inputs and the run's data
    (``ctx.data_key``, always part of the key), determines the product: the component's config, the
    seed, ``ctx.replay_key`` for a stage that reads the replay split.  A ``cacheable`` stage also
    implements :meth:`save` and :meth:`load` (``load`` gets no inputs: a cached product must not
    need them).
    """

    provides: ClassVar[type]
    requires: ClassVar[Mapping[str, type]] = {}
    optional: ClassVar[Mapping[str, type]] = {}
    cacheable: ClassVar[bool] = False
    fallback: ClassVar[bool] = False
    version: ClassVar[int] = 1

    def __init__(self, name: str, component: str = ""):
        self.name = name
        self.component = component

    def identity(self, ctx: StageContext) -> Any:
        """JSON-able facts that determine the product besides the data and the inputs (default: none)."""
        return None

    def run(self, ctx: StageContext, **inputs: Any) -> Any:
        raise NotImplementedError

    def save(self, product: Any, folder: Path) -> None:
        raise NotImplementedError(f"stage {self.name!r} is cacheable but has no save()")

    def load(self, folder: Path, ctx: StageContext) -> Any:
        raise NotImplementedError(f"stage {self.name!r} is cacheable but has no load()")

    def __repr__(self) -> str:
        return f"<stage {self.name} -> {self.provides.__name__}>"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


# -------------------------------------------------------------------------------------- runner
@dataclass
class StageRecord:
    """How one stage went: its key, whether it came from the cache, its wall time."""

    stage: str
    component: str
    provides: str
    inputs: list[str]
    key: str
    cached: bool
    seconds: float | None = None


class Pipeline:
    """The stages of one run, wired by product type."""

    def __init__(self, stages: list[Stage], *, where: str | None = None):
        self.where = where
        overridden = {s.provides for s in stages if not s.fallback}
        self.stages = [s for s in stages if not (s.fallback and s.provides in overridden)]
        self.provider: dict[type, Stage] = {}
        for s in self.stages:
            if s.provides in self.provider:
                other = self.provider[s.provides]
                raise ConfigError(f"stages {other.name!r} and {s.name!r} both provide {s.provides.__name__}", file=where)
            self.provider[s.provides] = s
        for s in self.stages:
            for arg, kind in s.requires.items():
                if kind not in self.provider:
                    raise ConfigError(f"stage {s.name!r} needs a {kind.__name__} ({arg}) but no section of the strategy provides one", file=where)
        self._keys: dict[str, str] = {}
        self.records: dict[str, StageRecord] = {}

    def __bool__(self) -> bool:
        return bool(self.stages)

    def inputs_of(self, stage: Stage) -> dict[str, Stage]:
        wanted = {**stage.requires, **{a: k for a, k in stage.optional.items() if k in self.provider}}
        return {arg: self.provider[kind] for arg, kind in wanted.items()}

    def key(self, stage: Stage, ctx: StageContext, _path: tuple[str, ...] = ()) -> str:
        """The stage's cache key: its name, version, the run's data key, its identity and its inputs' keys."""
        if stage.name in self._keys:
            return self._keys[stage.name]
        if stage.name in _path:
            raise ConfigError(f"pipeline cycle: {' -> '.join((*_path, stage.name))}", file=self.where)
        inputs = {arg: self.key(s, ctx, (*_path, stage.name)) for arg, s in self.inputs_of(stage).items()}
        key = _digest({"stage": stage.name, "version": stage.version, "provides": stage.provides.__qualname__,
                       "data": ctx.data_key, "identity": stage.identity(ctx), "inputs": inputs})
        self._keys[stage.name] = key
        return key

    def plan(self, ctx: StageContext) -> list[StageRecord]:
        """Every stage in dependency order with its key and whether its product is cached."""
        order: list[Stage] = []

        def visit(s: Stage) -> None:
            if s not in order:
                for dep in self.inputs_of(s).values():
                    visit(dep)
                order.append(s)

        for s in self.stages:
            visit(s)
        return [StageRecord(s.name, s.component, s.provides.__name__,
                            [f"{a}: {d.provides.__name__}" for a, d in self.inputs_of(s).items()],
                            self.key(s, ctx), s.cacheable and ctx.cache.has(s.name, self.key(s, ctx))) for s in order]

    def run(self, ctx: StageContext, targets: list[type] | None = None) -> Products:
        """Products of ``targets`` (default: every stage's) and of everything they need."""
        done: dict[type, Any] = {}
        for kind in targets or [s.provides for s in self.stages]:
            if kind not in self.provider:
                raise ConfigError(f"no stage of the strategy provides {kind.__name__}", file=self.where)
            self._product(self.provider[kind], ctx, done)
        return Products(done)

    def _product(self, stage: Stage, ctx: StageContext, done: dict[type, Any]) -> Any:
        if stage.provides in done:
            return done[stage.provides]
        key = self.key(stage, ctx)
        deps = self.inputs_of(stage)
        record = StageRecord(stage.name, stage.component, stage.provides.__name__, [f"{a}: {d.provides.__name__}" for a, d in deps.items()], key, False)
        if not stage.cacheable:
            inputs = {arg: self._product(s, ctx, done) for arg, s in deps.items()}
            t0 = time.perf_counter()
            product = stage.run(ctx, **inputs)
            record.seconds = time.perf_counter() - t0
        else:
            with ctx.cache.lock(stage.name, key):
                folder = ctx.cache.folder(stage.name, key)
                record.cached = ctx.cache.has(stage.name, key)
                if not record.cached:
                    inputs = {arg: self._product(s, ctx, done) for arg, s in deps.items()}
                    t0 = time.perf_counter()
                    made = stage.run(_with_work_dir(ctx, ctx.cache.work_dir(stage.name, key)), **inputs)
                    ctx.cache.store(stage.name, key, lambda d: stage.save(made, d),
                                    {"stage": stage.name, "component": stage.component, "key": key})
                else:
                    t0 = time.perf_counter()
                # loaded in both cases, so the first and every cached run see the same product
                product = stage.load(folder, ctx)
                record.seconds = time.perf_counter() - t0
        self.records[stage.name] = record  # in completion order: dependencies first
        done[stage.provides] = product
        return product

    def timings(self) -> "pd.DataFrame":
        """One row per stage that ran: stage, component, product, cached, seconds."""
        import pandas as pd

        rows = [{"stage": r.stage, "component": r.component, "product": r.provides, "cached": r.cached, "seconds": r.seconds}
                for r in self.records.values()]
        return pd.DataFrame(rows, columns=["stage", "component", "product", "cached", "seconds"])


def _with_work_dir(ctx: StageContext, work: Path) -> StageContext:
    from dataclasses import replace

    return replace(ctx, work_dir=work)
