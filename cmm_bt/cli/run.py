"""Run a strategy, write its run folder and print its report."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "run"

OVERWRITE = typer.Option(False, "--overwrite", help="Replace the --out folder if it exists (the old run stays until "
                         "the new one is complete).")
ALLOW_EXTERNAL = typer.Option(False, "--allow-external-files", help="Let dataset manifests name files outside the "
                              "data root (absolute paths, '..'); also CMM_BT_ALLOW_EXTERNAL_FILES=1.")


def allow_external_files(allow: bool) -> None:
    """``--allow-external-files``: set ``$CMM_BT_ALLOW_EXTERNAL_FILES`` for this process and its workers."""
    if allow:
        import os

        from cmm_bt.data.manifest import ALLOW_EXTERNAL_ENV

        os.environ[ALLOW_EXTERNAL_ENV] = "1"


def command(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    dataset: str = options.DATASET,
    out: Path = typer.Option(None, "--out", help="Run folder to write (default: runs/<strategy>-<dataset>-<time>)."),
    overwrite: bool = OVERWRITE,
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    allow_external: bool = ALLOW_EXTERNAL,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.api import execute_run, prepare_run, report
    from cmm_bt.results import check_out_dir

    allow_external_files(allow_external)
    if out is not None:  # before loading anything: a bad --out is found now, not after the backtest
        check_out_dir(out, overwrite=overwrite)
    session = options.session(plugins_dir, disable)
    run, market = prepare_run(session, strategy, overrides=override, dataset=dataset, data_root=data_root)
    result = execute_run(session, run, market, out_dir=out, overwrite=overwrite)
    report(session, run, result)
    session.console.print(f"[dim]run folder:[/] {result.run_dir}")
