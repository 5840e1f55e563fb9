"""Dataset commands."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options, run

app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


@app.command("inspect")
def inspect(
    name: str = typer.Argument(..., help="Dataset manifest name or path."),
    data_root: Path = options.DATA_ROOT,
    allow_external: bool = run.ALLOW_EXTERNAL,
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    """Span, rows, tick, spread and depth statistics, gaps, crossed or locked rows."""
    from cmm_bt.data.inspect import inspect_market, render_inspection
    from cmm_bt.data.loading import load_market
    from cmm_bt.data.manifest import load_manifest, resolve_data_root

    run.allow_external_files(allow_external)
    session = options.session(plugins_dir, disable)
    manifest = load_manifest(name)
    market = load_market(manifest, resolve_data_root(data_root), session.registry)
    render_inspection(inspect_market(market), session.console)


@app.command("list")
def list_(plugins_dir: Path = options.PLUGINS_DIR) -> None:
    """Dataset manifests found in datasets/."""
    from rich.table import Table

    from cmm_bt.data.manifest import PROJECT_DATASETS, load_manifest

    table = Table(title="datasets")
    for col in ("name", "source", "files", "description"):
        table.add_column(col)
    folders = {Path.cwd() / "datasets", PROJECT_DATASETS}
    for path in sorted({p for f in folders if f.is_dir() for p in f.glob("*.yaml")}):
        m = load_manifest(str(path))
        table.add_row(m.name, m.source, str(len(m.files)), m.description)
    from rich.console import Console

    Console().print(table)
