"""Run a study: every strategy tuned with the same budget on validation, run per seed on test, compared."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "study"


def command(
    study: Path = typer.Argument(..., help="Study file (datasets, strategies, seeds, protocol, tuning, reference)."),
    out: Path = typer.Option(..., "--out", help="Study folder: tuning/, runs/, study.json, paired.json, study.md, report.html."),
    executor: str = options.EXECUTOR,
    workers: int = options.WORKERS,
    ray_address: str = options.RAY_ADDRESS,
    data_root: Path = options.DATA_ROOT,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.study import run_study

    session = options.session(plugins_dir, disable)
    res = run_study(session, study, out, executor=options.executor_name(executor, ray_address), workers=workers,
                    ray_address=ray_address, data_root=data_root)
    session.console.print(f"[dim]study: tuning {res.timing['tuning_s']:.0f} s, test runs {res.timing['test_s']:.0f} s, "
                          f"total {res.timing['total_s']:.0f} s[/]")
