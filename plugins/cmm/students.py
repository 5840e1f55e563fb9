"""Student plugins ``mlp``, ``gru`` and ``tcn``: tiny networks on raw market inputs.

A student's ``Config`` is the strategy's ``students.params``: the architecture options of its
class plus the OFDD training options shared by all (:class:`StudentParams`).  Torch is imported
only inside :meth:`build` (the torch modules live in :mod:`cmm_bt_plugins.cmm.nets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from cmm_bt_plugins.models.interfaces import Student

if TYPE_CHECKING:
    from torch import nn

FAMILIES: tuple[str, ...] = ("layer", "task", "data", "kd-output", "kd-fitnets")
Family = Literal["layer", "task", "data", "kd-output", "kd-fitnets"]


class StudentParams(Student.Config):
    """OFDD options shared by every student class (see docs/cmm.md)."""

    families: list[Family] = Field(default_factory=lambda: ["layer", "task", "data"], description="Student families to train: `layer` (one per layer band), `task` (one per task, its peak band), `data` (one per volatility regime); or a single KD baseline `kd-output` / `kd-fitnets`.")
    layer_bands: int = Field(default=3, ge=1, description="Number of contiguous layer bands the probed layers are split into for the layer family.")
    pca_dim: int = Field(default=16, ge=1, description="p: dimension of each band's PCA-reduced teacher space (target of the projector P).")
    common_dim: int = Field(default=16, ge=1, description="Dimension of the common MoE space: the PCA of all probed layers concatenated.")
    embed_dim: int = Field(default=32, ge=2, description="d: dimension of the student embedding z.")
    lambda_f: float = Field(default=1.0, ge=0, description="λ_f: weight of the feature term ‖P z − PCA_ℓ(h_ℓ)‖² (mean over components).")
    lambda_s: float = Field(default=1.0, ge=0, description="λ_s: weight of the soft-target term ‖ŷ − ŷᵀ‖² (teacher predictions, standardised).")
    lambda_y: float = Field(default=1.0, ge=0, description="λ_y: weight of the ground-truth term ‖ŷ − y‖² (standardised targets).")
    lambda_d: float = Field(default=0.0, ge=0, description="λ_d: decorrelation penalty between this student's embedding and those of the students trained before it (mean squared cross-correlation).")
    lr: float = Field(default=2e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(default=1e-5, ge=0, description="Adam weight decay.")
    batch_size: int = Field(default=256, ge=1, description="Mini-batch size.")
    max_epochs: int = Field(default=40, ge=1, description="Maximum training epochs per student.")
    patience: int = Field(default=5, ge=1, description="Early stopping: epochs without validation-loss improvement before stopping (best weights restored).")
    threads: int = Field(default=1, ge=0, description="torch CPU threads while training (1 = bit-reproducible; 0 = torch default).")
    min_samples: int = Field(default=64, ge=8, description="A student with fewer training samples than this is an error.")
    fitnets_layer: int | None = Field(default=None, description="kd-fitnets: the teacher layer whose features the student matches (default: the middle probed layer).")
    cache: bool = Field(default=True, description="Cache the trained students on disk (the pipeline's stage cache, keyed by config, seed and inputs).")
    max_train_rows: int | None = Field(default=50_000, ge=100, description="At most this many rows per split (train, validation) are used to train students (evenly thinned; rows with teacher features always kept); null = all.")
    latency_steps: int = Field(default=2000, ge=10, description="Decisions timed (batch 1, CPU) for the CMM per-decision latency metric.")

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one family is needed")
        kd = [f for f in v if f.startswith("kd-")]
        if kd and len(v) > 1:
            raise ValueError("a KD baseline (kd-output / kd-fitnets) is a single student: use it alone")
        if len(set(v)) != len(v):
            raise ValueError("families listed twice")
        return v


class TorchStudent(Student):
    """Base of the torch students: ``build`` returns a :class:`~cmm_bt_plugins.cmm.nets.StudentNet`."""

    arch: ClassVar[str] = ""
    Config = StudentParams

    def backbone(self, window: int, n_features: int) -> "nn.Module":
        raise NotImplementedError

    def build(self, window: int, n_features: int, n_outputs: int, proj_dim: int) -> "nn.Module":
        from cmm_bt_plugins.cmm.nets import StudentNet

        return StudentNet(self.backbone(window, n_features), self.config.embed_dim, n_outputs, proj_dim)

    def distil(self, data, X, Y, train_idx, val_idx, *, regimes, probe, seed, console):
        """OFDD training of every planned student (:class:`~cmm_bt_plugins.cmm.ofdd.OFDDTrainer`)."""
        from cmm_bt_plugins.cmm.ofdd import OFDDTrainer

        return OFDDTrainer(self, seed=seed, console=console).fit(X, Y, train_idx, val_idx, data, regimes=regimes, probe=probe)

    def save(self, students, folder: Path) -> None:
        students.save(folder)

    def load(self, folder: Path):
        from cmm_bt_plugins.cmm.ofdd import StudentSet

        return StudentSet.load(folder, self.build)

    def parameter_count(self, window: int, n_features: int, n_outputs: int = 3, proj_dim: int | None = None) -> int:
        """Trainable parameters of one student with these input / output sizes."""
        net = self.build(window, n_features, n_outputs, proj_dim or self.config.pca_dim)
        return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


class MLPStudent(TorchStudent):
    """MLP on the flattened window after a shared per-step compression."""

    name = "mlp"

    class Config(StudentParams):
        hidden: int = Field(default=64, ge=4, description="Width of the MLP hidden layer.")
        compress: int = Field(default=8, ge=1, description="Per-time-step feature compression F -> c before flattening.")

    def backbone(self, window: int, n_features: int) -> "nn.Module":
        from cmm_bt_plugins.cmm.nets import MLPBackbone

        return MLPBackbone(window, n_features, self.config.embed_dim, self.config.hidden, self.config.compress)


class GRUStudent(TorchStudent):
    """One-layer GRU over the window."""

    name = "gru"

    class Config(StudentParams):
        hidden: int = Field(default=48, ge=4, description="GRU hidden size.")

    def backbone(self, window: int, n_features: int) -> "nn.Module":
        from cmm_bt_plugins.cmm.nets import GRUBackbone

        return GRUBackbone(n_features, self.config.embed_dim, self.config.hidden)


class TCNStudent(TorchStudent):
    """Causal dilated temporal convolutions."""

    name = "tcn"

    class Config(StudentParams):
        channels: int = Field(default=32, ge=2, description="Channels of each convolution level.")
        levels: int = Field(default=4, ge=1, description="Convolution levels (dilations 1, 2, 4, ...).")
        kernel: int = Field(default=3, ge=2, description="Convolution kernel size.")

    def backbone(self, window: int, n_features: int) -> "nn.Module":
        from cmm_bt_plugins.cmm.nets import TCNBackbone

        c = self.config
        return TCNBackbone(n_features, c.embed_dim, c.channels, c.levels, c.kernel)


STUDENT_CLASSES: tuple[type[TorchStudent], ...] = (MLPStudent, GRUStudent, TCNStudent)
