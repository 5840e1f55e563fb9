"""Run several strategies on one or more datasets and print them side by side (and a study table)."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options
from cmm_bt.cli import run as run_command

NAME = "compare"

DATASETS = typer.Option(
    [], "--dataset", "-d",
    help="Dataset manifest name or path; repeat it for a study over several datasets (default: each strategy's own).",
)
TABLE = typer.Option(None, "--table", help="Also write the study table (one row per dataset x strategy) as Markdown here.")
PAIRED = typer.Option(None, "--paired", help="Two strategy names (file stems), A B: the mean difference of their episode PnL "
                      "on the episodes both played, with a block-bootstrap CI and p-value, per dataset.")


def command(
    strategies: list[Path] = typer.Argument(..., help="Strategy YAML files."),
    dataset: list[str] = DATASETS,
    out: Path = typer.Option(None, "--out", help="Folder for the run folders (default: runs/)."),
    table: Path = TABLE,
    paired: tuple[str, str] = PAIRED,
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
    allow_external: bool = run_command.ALLOW_EXTERNAL,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
    executor: str = options.EXECUTOR,
    workers: int = options.WORKERS,
    ray_address: str = options.RAY_ADDRESS,
) -> None:
    from cmm_bt.api import execute_run, prepare_run
    from cmm_bt.compare import paired_table, render_comparison, study_markdown, study_table, uncertainty_table
    from cmm_bt.results import default_run_dir
    from cmm_bt.storage import atomic_write

    run_command.allow_external_files(allow_external)
    session = options.session(plugins_dir, disable)
    results = []
    # --executor / --workers / --ray-address: the runs go to worker processes (cmm_bt/executors); else here, in turn
    with options.executor_or_none(executor, workers, ray_address) as pool:
        for ds in dataset or [None]:
            prepared = [prepare_run(session, s, overrides=override, dataset=ds, data_root=data_root) for s in strategies]
            batch = []
            if pool is not None:
                from cmm_bt.executors.jobs import run_prepared

                batch = run_prepared(pool, prepared, out=out, overrides=override, dataset=ds, data_root=data_root,
                                     plugins_dir=plugins_dir, disabled=tuple(disable), console=session.console)
            else:
                for run, market in prepared:
                    target = default_run_dir(run.name, run.dataset.name, root=out) if out else None
                    # a plain line, not a spinner: the run's own stages show rich progress bars
                    session.console.print(f"[bold]running {run.name} on {run.dataset.name}[/]")
                    batch.append(execute_run(session, run, market, out_dir=target))
            if len(dataset) > 1:
                session.console.rule(batch[0].dataset_name)
            render_comparison(batch, session.console)
            session.console.print(uncertainty_table(batch))
            results += batch
    extra = session.hooks.study_columns(metrics=sorted({k for r in results for k in r.metrics}))
    if len(dataset) > 1 or table:
        session.console.print(study_table(results, extra))
    if table:
        with atomic_write(table) as tmp:
            tmp.write_text(study_markdown(results, extra))
        session.console.print(f"study table written to {table}")
    if paired:
        session.console.print(paired_table(results, *paired))
