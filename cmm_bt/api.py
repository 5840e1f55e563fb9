"""The library API behind the CLI: prepare a run, execute it, report it."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np
from rich.console import Console

from cmm_bt.components import RunContext
from cmm_bt.config.loader import apply_overrides, compose, deep_merge, parse_strategy, validate_strategy
from cmm_bt.data.loading import default_cache_dir, load_market
from cmm_bt.data.manifest import compute_splits, load_manifest, resolve_data_root
from cmm_bt.data.schema import MarketData
from cmm_bt.errors import ConfigError, DataError
from cmm_bt.pipeline import Pipeline, Products, Signals, StageContext
from cmm_bt.plugins import Hooks, PluginSettings, build_plugin_manager
from cmm_bt.registry import Registry
from cmm_bt.run import RunSpec
from cmm_bt.stage_cache import StageCache


@dataclass
class Session:
    """The plugin manager, its facade and the component registry of one invocation."""

    hooks: Hooks
    console: Console

    @classmethod
    def start(cls, *, plugins_dir: Path | None = None, disabled: tuple[str, ...] = (), console: Console | None = None) -> "Session":
        pm = build_plugin_manager(PluginSettings.from_env(plugins_dir=plugins_dir, disabled=disabled))
        return cls(Hooks(pm), console or Console())

    @cached_property
    def registry(self) -> Registry:
        """Component classes of every loaded plugin (built on first use)."""
        return self.hooks.build_registry()


def prepare_run(
    session: Session,
    strategy_path: Path,
    *,
    overrides: Iterable[str] = (),
    dataset: str | None = None,
    data_root: Path | None = None,
    cache_dir: Path | None = None,
) -> tuple[RunSpec, MarketData]:
    """Validate the strategy, load its dataset (cached) and compute the splits."""
    overrides = list(overrides)
    if dataset is not None:
        overrides.append(f"dataset={dataset}")
    strategy_path = Path(strategy_path)
    composed = compose(strategy_path)
    dataset_name = parse_strategy(apply_overrides(composed, overrides), file=strategy_path).dataset
    manifest = load_manifest(dataset_name, strategy_dir=strategy_path.resolve().parent)
    # precedence, lowest first: the dataset's engine defaults, the strategy file, the overrides
    data = apply_overrides(deep_merge({"engine": dict(manifest.engine_defaults)}, composed), overrides)
    strategy, resolved = validate_strategy(data, file=strategy_path, registry=session.registry)
    cache = cache_dir or default_cache_dir()
    market = load_market(manifest, resolve_data_root(data_root), session.registry, cache)
    splits = compute_splits(manifest, market.start_ns, market.end_ns)
    run = RunSpec(
        name=strategy_path.stem,
        strategy=strategy,
        resolved=resolved,
        strategy_file=strategy_path,
        dataset=manifest,
        splits=splits,
        cache_dir=cache,
        registry=session.registry,
        console=session.console,
    )
    return run, market


def data_key(run: RunSpec, market: MarketData) -> str:
    """Hash of the dataset's content, its splits and the engine settings (what model stages read)."""
    h = hashlib.blake2b(market.content_digest().encode(), digest_size=16)
    h.update(json.dumps({"instrument": repr(market.instrument), "sessions": market.sessions, "splits": run.splits,
                         "engine": run.strategy.engine}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def build_pipeline(run: RunSpec) -> Pipeline:
    """The stages every plugin section of the strategy contributes, wired by product type."""
    stages = []
    for name, spec in run.strategy.sections.items():
        section = run.registry.sections[name]
        if section.stages is not None:
            stages.extend(section.stages(run, spec))
    return Pipeline(stages, where=run.where)


def stage_context(run: RunSpec, market: MarketData) -> StageContext:
    """What the run's stages read: data, replay grid, keys and the stage cache."""
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid

    try:
        grid, _ = decision_grid(market, EngineConfig(**run.strategy.engine), *run.splits[run.replay_split])
    except ConfigError as err:  # an engine setting this data cannot honour: name the strategy file
        if err.file is None and run.where:
            raise ConfigError(err.message, file=run.where, key=err.key) from None
        raise
    key = data_key(run, market)
    replay = hashlib.blake2b(f"{key}/{run.replay_split}".encode(), digest_size=16)
    replay.update(np.ascontiguousarray(grid))  # the array's buffer, not a bytes copy of it
    return StageContext(run=run, market=market, grid=grid, data_key=key, replay_key=replay.hexdigest(), cache=StageCache(run.cache_dir))


def _require_decisions(run: RunSpec, market: MarketData, engine, grid: np.ndarray) -> None:
    """A replay without a single decision step is bad input (a split too short, a one-sided book), not a
    run that "succeeds" with nothing in it."""
    if len(grid):
        return
    start, end = run.splits[run.replay_split]
    ts = market.events["exch_ts"].to_numpy()
    inside = ts[(ts >= start) & (ts < end)]
    held = f"{(inside[-1] - inside[0]) / 1e9:g} s of data ({inside.size} events)" if inside.size else "no events"
    raise DataError(f"the {run.replay_split!r} split has no decision step: it holds {held}, and decisions come "
                    f"every {engine.decision_interval_ms:g} ms of a session once its book is two-sided",
                    file=run.dataset.path, key="split")


def execute_run(session: Session, run: RunSpec, market: MarketData, *, out_dir: Path | None = None, write: bool = True,
                overwrite: bool = False):
    """Model pipeline, policy fit, replay, metrics, run folder, reports.  Returns the :class:`RunResult`.

    With ``write``, the run folder's location is checked first (exists without ``overwrite``, not a
    folder, not writable: a :class:`CmmBtError` before any work) and reporters' files (``plots``) are
    written into the folder before it appears.
    """
    from cmm_bt.components import Reporter
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import run_backtest
    from cmm_bt.metrics import compute_metrics
    from cmm_bt.results import RunResult, check_out_dir, default_run_dir, steps_spool, write_run_folder

    hooks = session.hooks
    t0 = time.perf_counter()
    target = (out_dir or default_run_dir(run.name, run.dataset.name)) if write else None
    spool = None
    try:
        hooks.before_run(run=run)
        if target is not None:
            check_out_dir(target, overwrite=overwrite)
            spool = steps_spool(target)  # the steps go to disk as the replay makes them
        engine = EngineConfig(**run.strategy.engine)
        start_ns, end_ns = run.splits[run.replay_split]
        pipeline = build_pipeline(run)
        ctx = stage_context(run, market)
        _require_decisions(run, market, engine, ctx.grid)
        products = pipeline.run(ctx) if pipeline else Products()
        signals = products.get(Signals)

        spec = run.strategy.execution
        policy = run.registry.create("execution", spec.name, spec.params, where=run.where, key="execution")
        train = market.between(*run.splits["train"])
        policy.fit(RunContext(market.instrument, engine.decision_interval_ms * 1_000_000, engine.position_limit, engine.order_qty, train, products=products))

        on_quote = hooks.on_quote if hooks.has_impls("cmm_bt_on_quote") else None
        on_fill = hooks.on_fill if hooks.has_impls("cmm_bt_on_fill") else None
        frame = None if signals is None else signals.frame
        output = run_backtest(market, policy, engine, signals=frame, on_quote=on_quote, on_fill=on_fill, start_ns=start_ns,
                              end_ns=end_ns, steps_to=spool)
        metrics = compute_metrics(output, wall_s=output.wall_s)
        result = RunResult(
            run_name=run.name,
            strategy_name=run.name,
            dataset_name=run.dataset.name,
            config=run.resolved | {"dataset": run.dataset.name, "engine": engine.model_dump()},
            metrics=metrics,
            output=output,
            split=run.replay_split,
            fee_model=engine.fee_summary(market.instrument.currency),
        )
        result.metrics.update({f"fitted_{k}": float(v) for k, v in policy.fitted_parameters().items()})
        if signals is not None:
            _merge_model_metrics(result.metrics, signals.metrics)
            result.extra.update(signals.tables)
            result.quiet_tables.update(signals.quiet_tables)
        for product in products.values():
            add_run_outputs(result, product)
        if pipeline:
            result.extra["pipeline_stages"] = pipeline.timings()
        result.metrics.update(hooks.extra_metrics(run=run, result=result))
        result.metrics["run_wall_s"] = time.perf_counter() - t0
        if target is not None:
            writers = []
            for i, spec in enumerate(run.strategy.reporters):  # reporters' files go in before the folder appears
                reporter = run.registry.create("reporter", spec.name, spec.params, where=run.where, key=f"reporters.{i}")
                if type(reporter).write_files is not Reporter.write_files:
                    writers.append(lambda folder, r=reporter: r.write_files(result, folder))
            result.run_dir = write_run_folder(result, target, overwrite=overwrite, writers=writers)
        hooks.after_run(run=run, result=result)
        return result
    except BaseException as err:
        hooks.on_run_error(run=run, error=err)
        raise
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)  # moved into the run folder unless the run failed


#: Metrics a model pipeline may replace, and where the engine's own value is kept then.  Models
#: evaluated in batch before the replay report the per-decision latency they would have live.
OVERRIDABLE_METRICS: dict[str, str] = {
    "decision_latency_us_p50": "policy_latency_us_p50",
    "decision_latency_us_p99": "policy_latency_us_p99",
}


def _merge_model_metrics(metrics: dict, model: dict) -> None:
    for key, value in model.items():
        if key in metrics and key not in OVERRIDABLE_METRICS:
            raise RuntimeError(f"the model pipeline reports metric {key!r}, which the engine already computes")
    for key, engine_key in OVERRIDABLE_METRICS.items():
        if key in model and key in metrics:
            metrics[engine_key] = metrics[key]
    metrics.update(model)


def add_run_outputs(result, product) -> None:
    """Add what ``product`` contributes (:class:`cmm_bt.pipeline.RunOutputs`) to ``result``."""
    metrics = getattr(product, "run_metrics", None)
    if metrics is not None:
        _merge_model_metrics(result.metrics, metrics())
    tables = getattr(product, "run_tables", None)
    for name, table in (tables() if tables is not None else {}).items():
        if name in result.extra:
            raise RuntimeError(f"two products write the table {name!r}")
        result.extra[name] = table
    files = getattr(product, "run_files", None)
    for name, data in (files() if files is not None else {}).items():
        if name in result.files:
            raise RuntimeError(f"two products write the file {name!r}")
        result.files[name] = data


def report(session: Session, run: RunSpec, result) -> None:
    """Every reporter of the strategy, then the plugins' extra sections."""
    for spec in run.strategy.reporters:
        reporter = run.registry.create("reporter", spec.name, spec.params, where=str(run.strategy_file), key="reporters")
        reporter.report(result, session.console)
    session.hooks.report_sections(result=result, console=session.console)
