"""The strategy file's envelope (stage 1 of validation).

Stage 1 checks the shape: known top-level keys, each component as ``{name, params}``.  Stage 2
(:func:`cmm_bt.config.loader.validate_strategy`) looks each component up in the registry and
validates its ``params`` with the component's own ``Config`` model, and ``engine`` with
:class:`cmm_bt.engine.config.EngineConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ComponentSpec(BaseModel):
    """A registered component by name, with its own params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered component name (see `cmm-bt plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Options, validated by the component's own Config.")


SplitName = Literal["train", "validation", "test", "all"]


class Strategy(BaseModel):
    """A strategy file after ``extends:`` and ``-o`` overrides are applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = Field(default=None, description="Free text shown in the report.")
    dataset: str = Field(default="synthetic", description="Dataset manifest name (datasets/NAME.yaml) or a path to a manifest file.")
    split: SplitName = Field(default="test", description="Which split of the dataset to replay.")
    seed: int = Field(default=0, description="Seed for every random choice of the run.")
    execution: ComponentSpec = Field(description="The quoting policy (kind `execution`).")
    engine: dict[str, Any] = Field(default_factory=dict, description="Exchange simulator settings (see docs/engine.md).")
    teacher: ComponentSpec | None = Field(default=None, description="Model stage: a teacher (kind `teacher`).")
    probe: ComponentSpec | None = Field(default=None, description="Model stage: a feature probe (kind `probe`).")
    students: ComponentSpec | None = Field(default=None, description="Model stage: student models (kind `student`).")
    moe: ComponentSpec | None = Field(default=None, description="Model stage: a mixture of experts (kind `moe`).")
    reporters: list[ComponentSpec] = Field(
        default_factory=lambda: [ComponentSpec(name="rich"), ComponentSpec(name="plots")],
        description="Reports to produce, in order (kind `reporter`).",
    )


#: Strategy sections that name one component, and the component kind each one names.
COMPONENT_SECTIONS: dict[str, str] = {
    "execution": "execution",
    "teacher": "teacher",
    "probe": "probe",
    "students": "student",
    "moe": "moe",
}
