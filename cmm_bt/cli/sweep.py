"""Tune a strategy: run it once per point of a parameter grid or search, on several workers."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "sweep"

PARAM = typer.Option(
    ..., "--param", "-P",
    help="KEY=V1,V2,... or KEY=log(LO,HI) / uniform(LO,HI) / int(LO,HI); KEY is any -o path (repeatable). "
    "log(LO,HI,N) / uniform(LO,HI,N) give N points.",
)


def command(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    out: Path = typer.Option(..., "--out", help="Sweep folder: trials/, sweep.json, sweep.md, sweep.parquet, best.yaml."),
    param: list[str] = PARAM,
    dataset: str = options.DATASET,
    split: str = typer.Option("validation", "--split", help="Split every trial replays (train | validation | test | all)."),
    search: str = typer.Option("grid", "--search", help="grid (every combination), random or tpe (Optuna, seeded)."),
    trials: int = typer.Option(None, "--trials", help="Number of trials (random and tpe)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random and tpe searches."),
    metric: str = typer.Option("pnl_map", "--metric", help="Run metric to optimise (docs/metrics.md)."),
    direction: str = typer.Option(None, "--direction", help="max or min (default: from the metric; max for pnl_map)."),
    executor: str = options.EXECUTOR,
    workers: int = options.WORKERS,
    ray_address: str = options.RAY_ADDRESS,
    retries: int = typer.Option(2, "--retries", help="Times a trial whose worker died is started again."),
    max_trials_per_worker: int = typer.Option(50, "--max-trials-per-worker", help="Trials a worker runs before it is replaced (0: never)."),
    then_test: bool = typer.Option(False, "--then-test", help="Run best.yaml on the test split and show it beside the sweep's split."),
    trial_reports: bool = typer.Option(False, "--trial-reports", help="Write the reporters' files (plots, report.html) in every trial folder too."),
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.sweep import SweepSpec, run_sweep

    session = options.session(plugins_dir, disable)
    spec = SweepSpec(
        strategy=strategy,
        out=out,
        params=list(param),
        dataset=dataset,
        split=split,
        search=search,
        trials=trials,
        seed=seed,
        metric=metric,
        direction=direction,
        executor=options.executor_name(executor, ray_address),
        workers=workers,
        ray_address=ray_address,
        retries=retries,
        max_trials_per_worker=max_trials_per_worker,
        overrides=list(override),
        data_root=data_root,
        plugins_dir=plugins_dir,
        disabled=tuple(d.removeprefix("no:") for d in disable),
        then_test=then_test,
        trial_reports=trial_reports,
    )
    run_sweep(session, spec)
