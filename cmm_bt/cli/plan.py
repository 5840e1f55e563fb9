"""Print a strategy's model pipeline: each stage, its component, its inputs, whether its product is cached."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "plan"


def command(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    dataset: str = options.DATASET,
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from rich.table import Table

    from cmm_bt.api import build_pipeline, prepare_run, stage_context

    session = options.session(plugins_dir, disable)
    run, market = prepare_run(session, strategy, overrides=override, dataset=dataset, data_root=data_root)
    pipeline = build_pipeline(run)
    if not pipeline:
        session.console.print(f"{strategy}: no model stages (the execution policy {run.strategy.execution.name!r} quotes from the market alone)")
        return
    table = Table(title=f"Pipeline of {run.name} on {run.dataset.name} ({run.replay_split} split)", title_justify="left")
    for col in ("stage", "component", "provides", "inputs", "cached"):
        table.add_column(col, overflow="fold", no_wrap=col != "inputs")
    for r in pipeline.plan(stage_context(run, market)):
        stage = next(s for s in pipeline.stages if s.name == r.stage)
        cached = ("yes" if r.cached else "no") if stage.cacheable else "—"
        table.add_row(r.stage, r.component, r.provides, ", ".join(i.split(": ")[1] for i in r.inputs) or "—", cached)
    session.console.print(table)
