"""Run several strategies on one dataset and print them side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "compare"


def command(
    strategies: list[Path] = typer.Argument(..., help="Strategy YAML files."),
    dataset: str = options.DATASET,
    out: Path = typer.Option(None, "--out", help="Folder for the run folders (default: runs/)."),
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.api import execute_run, prepare_run
    from cmm_bt.compare import render_comparison
    from cmm_bt.results import default_run_dir

    session = options.session(plugins_dir, disable)
    prepared = [prepare_run(session, s, overrides=override, dataset=dataset, data_root=data_root) for s in strategies]
    results = []
    for run, market in prepared:
        target = default_run_dir(run.name, run.dataset.name, root=out) if out else None
        with session.console.status(f"running {run.name} on {run.dataset.name}"):
            results.append(execute_run(session, run, market, out_dir=target))
    render_comparison(results, session.console)
