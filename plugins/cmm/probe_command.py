"""``cmm-bt probe STRATEGY.yaml``: run the teacher and the fluorescent probe only."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from cmm_bt.cli import options


def probe_command(
    strategy: Path = typer.Argument(..., help="Strategy YAML with teacher and probe sections."),
    dataset: str = options.DATASET,
    out: Path = typer.Option(None, "--out", help="Folder for probe.json and probe.png (default: runs/probe-<strategy>-<dataset>-<time>)."),
    override: list[str] = options.OVERRIDES,
    data_root: Path = options.DATA_ROOT,
) -> None:
    """Print the normalised fluorescent probe's heat maps (layers x tasks, per regime), peak layer
    bands and specialisation index; write probe.json and probe.png."""
    from rich.table import Table

    from cmm_bt.api import Session, build_pipeline, prepare_run, stage_context
    from cmm_bt.errors import ConfigError
    from cmm_bt.results import default_run_dir
    from cmm_bt.storage import atomic_write

    from cmm_bt_plugins.cmm.probe import ProbeResult

    session = Session.start()
    run, market = prepare_run(session, strategy, overrides=override, dataset=dataset, data_root=data_root)
    if run.strategy.section("probe") is None:
        raise ConfigError("needs a `probe:` section (and a `teacher:` to probe)", file=strategy, key="probe")
    pipeline = build_pipeline(run)
    ctx = stage_context(run, market)
    res = pipeline.run(ctx, targets=[ProbeResult]).get(ProbeResult)
    src = ctx.cache.folder("probe", pipeline.key(pipeline.provider[ProbeResult], ctx))

    table = Table(title="Peak layer band per task and regime", title_justify="left")
    for col in ("task", *res.regimes):
        table.add_column(col)
    for t, task in enumerate(res.tasks):
        table.add_row(task, *(f"layers {res.layers[res.peak_start[t, r]]}–{res.layers[res.peak_end[t, r] - 1]}" for r in range(len(res.regimes))))
    session.console.print(table)
    session.console.print("specialisation index (mean JS divergence between task profiles) per regime: "
                          + ", ".join(f"{r}: {v:.3f}" for r, v in zip(res.regimes, res.specialisation)))

    target = out or default_run_dir(f"probe-{run.name}", run.dataset.name)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("probe.json", "probe.png"):
        if (src / name).is_file():
            with atomic_write(target / name) as tmp:
                shutil.copyfile(src / name, tmp)
    session.console.print(f"[dim]wrote probe.json, probe.png to[/] {target}")
