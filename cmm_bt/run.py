"""What a validated run is made of, handed to every run-phase hook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.config.strategy import Strategy
    from cmm_bt.data.manifest import DatasetManifest
    from cmm_bt.registry import Registry


@dataclass
class RunSpec:
    """A validated strategy bound to its dataset.

    :ivar name: strategy name (the file stem).
    :ivar strategy: the validated envelope; ``strategy.section(name)`` gives a plugin section.
    :ivar resolved: the resolved strategy as a plain dict (written to ``config.yaml``).
    :ivar dataset: the dataset manifest.
    :ivar splits: ``train`` / ``validation`` / ``test`` / ``all`` -> ``(start_ns, end_ns)``, end exclusive.
    :ivar cache_dir: where stages cache their outputs (under a key hashing config and inputs).
    :ivar registry: component classes; ``registry.create(kind, name, params)`` builds one.
    """

    name: str
    strategy: "Strategy"
    resolved: dict[str, Any]
    strategy_file: Path | None
    dataset: "DatasetManifest"
    splits: dict[str, tuple[int, int]]
    cache_dir: Path
    registry: "Registry"
    console: "Console"
    out_dir: Path | None = None

    @property
    def seed(self) -> int:
        return self.strategy.seed

    @property
    def replay_split(self) -> str:
        return self.strategy.split

    @property
    def where(self) -> str | None:
        """The strategy file, for error messages."""
        return str(self.strategy_file) if self.strategy_file else None
