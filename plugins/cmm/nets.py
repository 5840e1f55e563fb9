"""Torch modules of the students (imports torch: import this module lazily).

Every student maps raw market inputs ``x [B, W, F]`` to an embedding ``z [B, d]`` through a
backbone, then a task head ``ŷ = H z`` and a projector ``P z`` into the PCA-reduced teacher space
of its band.
"""

from __future__ import annotations

import torch
from torch import nn


class StudentNet(nn.Module):
    """Backbone + task head + projector; ``forward(x) -> (z, y_hat, p_z)``."""

    def __init__(self, backbone: nn.Module, embed_dim: int, n_outputs: int, proj_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(embed_dim, n_outputs)
        self.projector = nn.Linear(embed_dim, max(proj_dim, 1))
        self.proj_dim = proj_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.backbone(x)
        return z, self.head(z), self.projector(z)


class MLPBackbone(nn.Module):
    """Per-time-step compression ``F -> c`` (shared over time), flatten ``W·c``, two hidden layers."""

    def __init__(self, window: int, n_features: int, embed_dim: int, hidden: int, compress: int):
        super().__init__()
        self.compress = nn.Linear(n_features, compress)
        self.mlp = nn.Sequential(
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(window * compress, hidden),
            nn.GELU(),
            nn.Linear(hidden, embed_dim),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.compress(x))


class GRUBackbone(nn.Module):
    """One-layer GRU over the window; the last hidden state is mapped to ``z``."""

    def __init__(self, n_features: int, embed_dim: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.out = nn.Sequential(nn.Linear(hidden, embed_dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return self.out(h[-1])


class _CausalConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.res = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(nn.functional.pad(x, (self.pad, 0)))
        return nn.functional.gelu(y) + self.res(x)


class TCNBackbone(nn.Module):
    """Causal dilated 1-d convolutions (dilations 1, 2, 4, ...) with residuals; last time step -> ``z``."""

    def __init__(self, n_features: int, embed_dim: int, channels: int, levels: int, kernel: int):
        super().__init__()
        blocks = []
        c_in = n_features
        for i in range(levels):
            blocks.append(_CausalConv(c_in, channels, kernel, 2**i))
            c_in = channels
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(nn.Linear(channels, embed_dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(x.transpose(1, 2))  # [B, C, W]
        return self.out(y[:, :, -1])
