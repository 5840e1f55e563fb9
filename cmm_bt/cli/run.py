"""Run a strategy, write its run folder and print its report."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "run"


def command(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    dataset: str = options.DATASET,
    out: Path = typer.Option(None, "--out", help="Run folder to write (default: runs/<strategy>-<dataset>-<time>)."),
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.api import execute_run, prepare_run, report

    session = options.session(plugins_dir, disable)
    run, market = prepare_run(session, strategy, overrides=override, dataset=dataset, data_root=data_root)
    result = execute_run(session, run, market, out_dir=out)
    report(session, run, result)
    session.console.print(f"[dim]run folder:[/] {result.run_dir}")
