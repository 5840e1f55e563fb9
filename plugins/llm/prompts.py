"""Serialise market windows ``x_t`` as short text prompts for the LLM teacher.

A prompt is ``header + one line per step (last ``steps`` decision steps, oldest first) + footer``.
``line`` and ``footer`` are Python format strings over these per-step fields (computed from the
:class:`~cmm_bt_plugins.features.market.FeatureSet` columns, so prompts are past-only too):

=========== =======================================================================
field       meaning
=========== =======================================================================
``spread``  best ask - best bid, ticks
``imb``     level-1 size imbalance ``(b - a) / (b + a)`` in [-1, 1]
``depth``   imbalance of the summed sizes over the K levels
``dmid``    mid change since the previous step, ticks
``flow``    ``sign * log(1 + |signed traded qty|)`` since the previous step
``volume``  ``log(1 + traded qty)`` since the previous step
``rvol``    realised volatility of mid changes over the window, ticks
``cum_dmid`` mid change over the whole window, ticks (same on every line)
=========== =======================================================================

The default renders ~90 SmolLM2 tokens (5 steps; digits are single tokens), e.g.::

    Book, oldest first: spread imbalance midmove volume
    1 +0.3 +0.0 1.4
    ...
    vol 0.4 trend +1.5. Next:
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from cmm_bt.components import Params

PROMPT_FIELDS: tuple[str, ...] = ("spread", "imb", "depth", "dmid", "flow", "volume", "rvol", "cum_dmid")


class PromptTemplate(Params):
    """How a window is written as text (see :mod:`cmm_bt_plugins.llm.prompts`)."""

    header: str = Field("Book, oldest first: spread imbalance midmove volume\n", description="Text before the step lines.")
    line: str = Field("{spread:.0f} {imb:+.1f} {dmid:+.1f} {volume:.1f}\n", description="Format string of one step line; fields: " + ", ".join(PROMPT_FIELDS) + ".")
    footer: str = Field("vol {rvol:.1f} trend {cum_dmid:+.1f}. Next:", description="Format string after the lines, filled with the last step's fields.")
    steps: int = Field(5, ge=1, le=256, description="How many of the window's most recent steps get a line (capped at the window W).")


def step_fields(X: np.ndarray, feature_names: list[str], levels: int) -> dict[str, np.ndarray]:
    """Per-step prompt fields of windows ``X [n, W, F]``, each ``[n, W]`` float64."""
    col = {n: i for i, n in enumerate(feature_names)}
    Xd = np.asarray(X, dtype=np.float64)
    bsz = np.expm1(Xd[:, :, [col[f"bid_sz_{k}"] for k in range(1, levels + 1)]])
    asz = np.expm1(Xd[:, :, [col[f"ask_sz_{k}"] for k in range(1, levels + 1)]])

    def imbalance(b: np.ndarray, a: np.ndarray) -> np.ndarray:
        tot = b + a
        return np.divide(b - a, tot, out=np.zeros_like(tot), where=tot > 0)

    dmid = Xd[:, :, col["dmid"]]
    return {
        "spread": Xd[:, :, col["spread"]],
        "imb": imbalance(bsz[:, :, 0], asz[:, :, 0]),
        "depth": imbalance(bsz.sum(-1), asz.sum(-1)),
        "dmid": dmid,
        "flow": Xd[:, :, col["flow"]],
        "volume": Xd[:, :, col["volume"]],
        "rvol": Xd[:, :, col["rvol"]],
        "cum_dmid": np.repeat(dmid.sum(1, keepdims=True), dmid.shape[1], axis=1),
    }


def render_prompts(template: PromptTemplate, X: np.ndarray, feature_names: list[str], levels: int) -> list[str]:
    """One prompt per window in ``X [n, W, F]`` (deterministic)."""
    fields = step_fields(X, feature_names, levels)
    n, W = X.shape[0], X.shape[1]
    s = min(template.steps, W)
    names = list(fields)
    # [n, s, n_fields] as Python floats; -0.0 printed as +0.0
    vals = np.stack([fields[k][:, W - s:] for k in names], axis=-1) + 0.0
    out = []
    for i in range(n):
        lines = [template.line.format_map(dict(zip(names, row))) for row in vals[i].tolist()]
        footer = template.footer.format_map(dict(zip(names, vals[i, -1].tolist())))
        out.append(template.header + "".join(lines) + footer)
    return out


__all__ = ["PROMPT_FIELDS", "PromptTemplate", "render_prompts", "step_fields"]
