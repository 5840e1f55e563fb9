"""The library API behind the CLI: prepare a run, execute it, report it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

from rich.console import Console

from cmm_bt.components import RunContext
from cmm_bt.config.loader import apply_overrides, compose, deep_merge, parse_strategy, validate_strategy
from cmm_bt.data.loading import default_cache_dir, load_market
from cmm_bt.data.manifest import compute_splits, load_manifest, resolve_data_root
from cmm_bt.data.schema import MarketData
from cmm_bt.plugins import Hooks, PluginSettings, build_plugin_manager
from cmm_bt.registry import Registry
from cmm_bt.run import RunSpec


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


def execute_run(session: Session, run: RunSpec, market: MarketData, *, out_dir: Path | None = None, write: bool = True):
    """Signals, policy fit, replay, metrics, run folder, reports.  Returns the :class:`RunResult`."""
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid, run_backtest
    from cmm_bt.metrics import compute_metrics
    from cmm_bt.results import RunResult, default_run_dir, write_run_folder

    hooks = session.hooks
    t0 = time.perf_counter()
    try:
        hooks.before_run(run=run)
        engine = EngineConfig(**run.strategy.engine)
        start_ns, end_ns = run.splits[run.replay_split]
        grid, _ = decision_grid(market, engine, start_ns, end_ns)
        signals = hooks.compute_signals(run=run, market=market, grid=grid)

        spec = run.strategy.execution
        policy = run.registry.create("execution", spec.name, spec.params, where=str(run.strategy_file), key="execution")
        train = market.between(*run.splits["train"])
        policy.fit(RunContext(market.instrument, engine.decision_interval_ms * 1_000_000, engine.position_limit, engine.order_qty, train))

        on_quote = hooks.on_quote if hooks.has_impls("cmm_bt_on_quote") else None
        on_fill = hooks.on_fill if hooks.has_impls("cmm_bt_on_fill") else None
        output = run_backtest(market, policy, engine, signals=signals, on_quote=on_quote, on_fill=on_fill, start_ns=start_ns, end_ns=end_ns)
        metrics = compute_metrics(output, wall_s=output.wall_s)
        result = RunResult(
            run_name=run.name,
            strategy_name=run.name,
            dataset_name=run.dataset.name,
            config=run.resolved | {"dataset": run.dataset.name, "engine": engine.model_dump()},
            metrics=metrics,
            output=output,
            split=run.replay_split,
        )
        result.extra.update(run.extra.get("tables", {}))
        result.quiet_tables.update(run.extra.get("quiet_tables", ()))
        result.metrics.update(hooks.extra_metrics(run=run, result=result))
        result.metrics["run_wall_s"] = time.perf_counter() - t0
        if write:
            target = out_dir or default_run_dir(run.name, run.dataset.name)
            result.run_dir = write_run_folder(result, target)
        hooks.after_run(run=run, result=result)
        return result
    except BaseException as err:
        hooks.on_run_error(run=run, error=err)
        raise


def report(session: Session, run: RunSpec, result) -> None:
    """Every reporter of the strategy, then the plugins' extra sections."""
    for spec in run.strategy.reporters:
        reporter = run.registry.create("reporter", spec.name, spec.params, where=str(run.strategy_file), key="reporters")
        reporter.report(result, session.console)
    session.hooks.report_sections(result=result, console=session.console)
