"""Strategy sections that plugins declare (``cmm_bt_register_sections``).

The host's strategy envelope holds only generic parts (dataset, split, seed, engine, execution,
reporters).  Every other top-level key is a section some installed plugin declared: its shape
(a pydantic model, by default ``{name, params}``), the component kind its ``name`` refers to,
and the pipeline stages it contributes to a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from cmm_bt.config.strategy import ComponentSpec

if TYPE_CHECKING:
    from cmm_bt.pipeline import Stage
    from cmm_bt.run import RunSpec


@dataclass(frozen=True)
class Section:
    """A top-level strategy key owned by a plugin.

    :ivar name: the top-level key it owns (e.g. ``regimes``).
    :ivar kind: the component kind the section's ``name`` refers to (its ``params`` are validated
        with that component's ``Config``), or None for a section that names no component.
    :ivar model: the section's pydantic model (default :class:`ComponentSpec`: ``{name, params}``).
    :ivar stages: ``stages(run, spec) -> list[Stage]``: what the section adds to a run's pipeline.
    :ivar description: shown by ``cmm-bt schema`` and ``cmm-bt plugins``.
    """

    name: str
    kind: str | None = None
    model: type[BaseModel] = ComponentSpec
    stages: "Callable[[RunSpec, BaseModel], list[Stage]] | None" = None
    description: str = ""
