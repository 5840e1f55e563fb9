"""A non-LLM teacher for cmm-bt: fixed random tanh layers over the market window.

Layer 0 is the standardised, flattened window (projected to ``hidden``); layer ``l`` is
``tanh(W_l h_{l-1} + b_l)`` with weights drawn once from ``seed``.  Deterministic, numpy only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from cmm_bt import hookimpl
from cmm_bt_plugins.models.interfaces import Teacher, TeacherParams


class RandomFeatureTeacher(Teacher):
    """Fixed random tanh layers over the flattened market window (a toy, non-LLM teacher)."""

    name: ClassVar[str] = "random-features"

    class Config(TeacherParams):
        hidden: int = Field(64, ge=2, le=4096, description="Width of every layer.")
        depth: int = Field(4, ge=1, le=64, description="Number of tanh layers after the input projection.")
        seed: int = Field(0, description="Seed of the fixed random weights.")

    def __init__(self, config: "RandomFeatureTeacher.Config"):
        super().__init__(config)
        self._weights: list[tuple[np.ndarray, np.ndarray]] | None = None

    def identity(self) -> dict[str, Any]:
        c = self.config
        return {"model": "random-features-v1", "hidden": c.hidden, "depth": c.depth, "seed": c.seed, "inputs": c.inputs.model_dump()}

    def layers(self) -> list[int]:
        return list(range(self.config.depth + 1))

    def hidden_size(self) -> int:
        return self.config.hidden

    def n_params(self) -> int:
        return int(sum(w.size + b.size for w, b in self._weights or []))

    def _build(self, n_in: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._weights is None or self._weights[0][0].shape[0] != n_in:
            rng = np.random.default_rng(self.config.seed)
            h = self.config.hidden
            dims = [n_in] + [h] * (self.config.depth + 1)
            self._weights = [(rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32), rng.normal(0, 0.1, b).astype(np.float32))
                             for a, b in zip(dims[:-1], dims[1:])]
        return self._weights

    def hidden_states(self, X: np.ndarray, fs) -> dict[int, np.ndarray]:
        flat = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        flat = np.nan_to_num((flat - flat.mean(1, keepdims=True)) / (flat.std(1, keepdims=True) + 1e-6))
        out = {}
        h = flat
        for l, (w, b) in enumerate(self._build(flat.shape[1])):
            h = h @ w + b if l == 0 else np.tanh(h @ w + b)
            out[l] = h.astype(np.float32)
        return out


@hookimpl
def cmm_bt_register_components(register):
    register(RandomFeatureTeacher)
