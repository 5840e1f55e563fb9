"""Print the JSON Schema of strategy files, plugin params included (for editor completion)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "schema"


def command(
    output: Path = typer.Option(None, "--output", help="Write to this file instead of stdout."),
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.config.schema import strategy_schema
    from cmm_bt.storage import atomic_write

    session = options.session(plugins_dir, disable)
    text = json.dumps(strategy_schema(session.registry), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        with atomic_write(output) as tmp:
            tmp.write_text(text)
