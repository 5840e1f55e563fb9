"""List installed plugins: name, version, hooks and the components they register; broken ones with their error."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "plugins"


def command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from cmm_bt.plugins import plugin_table

    session = options.session(plugins_dir, disable)
    rows = plugin_table(session.hooks.pm, session.registry)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="cmm-bt plugins")
    for col in ("plugin", "distribution", "version", "components", "hooks"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r["status"] == "broken":
            table.add_row(r["name"], r["distribution"], "", f"[red]broken:[/] {escape(r['error'])}", f"from {escape(r['origin'])}")
        else:
            table.add_row(r["name"], r["distribution"], r["version"], "\n".join(r["components"]), "\n".join(r["hooks"]))
    session.console.print(table)
