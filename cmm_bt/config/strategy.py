"""The strategy file's envelope (stage 1 of validation).

Stage 1 checks the shape of the host's generic parts (:data:`HOST_FIELDS`) and keeps every other
top-level key as a raw plugin section.  Stage 2 (:func:`cmm_bt.config.loader.validate_strategy`)
checks that each plugin section is declared by an installed plugin, validates it with the
section's model, looks each component up in the registry and validates its ``params`` with the
component's own ``Config`` model, and ``engine`` with :class:`cmm_bt.engine.config.EngineConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class ComponentSpec(BaseModel):
    """A registered component by name, with its own params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered component name (see `cmm-bt plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Options, validated by the component's own Config.")


SplitName = Literal["train", "validation", "test", "all"]


class Strategy(BaseModel):
    """A strategy file after ``extends:`` and ``-o`` overrides are applied.

    Keys other than the host's fields are plugin sections; after stage 2 :meth:`section` returns
    each one validated (None when the strategy leaves it out or sets it to null).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    description: str | None = Field(default=None, description="Free text shown in the report.")
    dataset: str = Field(default="synthetic", description="Dataset manifest name (datasets/NAME.yaml) or a path to a manifest file.")
    split: SplitName = Field(default="test", description="Which split of the dataset to replay.")
    seed: int = Field(default=0, description="Seed for every random choice of the run.")
    execution: ComponentSpec = Field(description="The quoting policy (kind `execution`).")
    engine: dict[str, Any] = Field(default_factory=dict, description="Exchange simulator settings (see docs/engine.md).")
    reporters: list[ComponentSpec] = Field(
        default_factory=lambda: [ComponentSpec(name="rich"), ComponentSpec(name="plots"), ComponentSpec(name="html")],
        description="Reports to produce, in order (kind `reporter`).",
    )
    _sections: dict[str, BaseModel] | None = PrivateAttr(default=None)

    @property
    def raw_sections(self) -> dict[str, Any]:
        """The plugin sections as written (not validated), null ones included."""
        return dict(self.model_extra or {})

    @property
    def sections(self) -> dict[str, BaseModel]:
        """The validated plugin sections that are present (stage 2 must have run)."""
        if self._sections is None:
            raise RuntimeError("plugin sections are validated in stage 2 (validate_strategy with a registry)")
        return self._sections

    def section(self, name: str) -> Any:
        """The validated section ``name``, or None when absent."""
        return self.sections.get(name)


#: The host's own top-level keys (everything else is a plugin section), plus ``extends``.
HOST_FIELDS: frozenset[str] = frozenset({*Strategy.model_fields, "extends"})
