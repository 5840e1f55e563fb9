"""Validate strategy files (shape, plugin names, plugin params, engine settings, dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from cmm_bt.cli import options

NAME = "validate"


def command(
    files: list[Path] = typer.Argument(..., help="Strategy YAML files."),
    plugins_dir: Path = options.PLUGINS_DIR,
    disable: list[str] = options.DISABLE,
) -> None:
    from cmm_bt.config.loader import load_strategy
    from cmm_bt.data.manifest import load_manifest

    session = options.session(plugins_dir, disable)
    for file in files:
        strategy, _ = load_strategy(file, registry=session.registry)
        manifest = load_manifest(strategy.dataset, strategy_dir=file.resolve().parent)
        session.registry.get("data", manifest.source, where=str(manifest.path), key="source")
        session.console.print(f"[green]ok[/] {file}")
