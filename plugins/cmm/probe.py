"""The normalised fluorescent probe (NFP): where each kind of information lives in the teacher.

Definitions (docs/cmm.md, the project's own): for layer l, task τ and data regime r

* stain: a ridge probe from the (train-standardised) hidden state h_l to y^τ, fitted on regime
  r's training samples;
* intensity: ``φ(l,τ,r) = max(0, R²)`` on regime r's held-out samples;
* normalised: ``Φ(l,τ,r) = φ(l,τ,r) / Σ_l' φ(l',τ,r)``, a distribution over layers.  When every
  layer has φ = 0 (no layer explains the task in that regime) Φ is *uniform* (1/L) and the cell is
  flagged ``informative = False``; when the regime has too few samples to fit/score, φ and Φ are NaN;
* excitation variant: ``E(l,τ,r) = mean_i ‖h_l(x_i ⊕ δ_τ) − h_l(x_i)‖ / mean_i ‖h_l(x_i) − h_l(x_π(i))‖``
  (π a seeded random pairing), normalised over layers like φ;
* peak band: the ``band_width`` consecutive layers with the largest total Φ;
* specialisation index: the mean pairwise Jensen–Shannon divergence (base 2, in [0, 1]) between
  the task profiles Φ(·,τ,r), per regime.

Everything here is numpy in, numpy out; the teacher is reached only through arrays and callables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from pydantic import Field

from cmm_bt_plugins.models.interfaces import Probe
from cmm_bt.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

from cmm_bt_plugins.models.signals import TASKS  # noqa: E402  (re-exported)


#: Input columns perturbed by the excitation variant, per task.
EXCITATION_FIELDS: dict[str, list[str]] = {"mid": ["dmid"], "spread": ["spread"], "volume": ["volume", "flow"]}


# ------------------------------------------------------------------------------------ regimes
def regime_thresholds(realised_vol: np.ndarray, train_idx: np.ndarray, n_regimes: int) -> np.ndarray:
    """Quantile cut points of the (past-only) realised volatility on the training samples.

    Returns ``n_regimes - 1`` thresholds: the ``k / n_regimes`` quantiles, k = 1 .. n-1.
    """
    if n_regimes < 1:
        raise ConfigError("n_regimes must be >= 1", key="probe.params.n_regimes")
    v = np.asarray(realised_vol, dtype=float)[np.asarray(train_idx)]
    v = v[np.isfinite(v)]
    if n_regimes == 1:
        return np.zeros(0)
    if v.size == 0:
        raise ConfigError("no finite realised volatility on the training split to set regime thresholds", key="realised_vol")
    return np.quantile(v, np.arange(1, n_regimes) / n_regimes)


def assign_regimes(realised_vol: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Regime index per sample (0 = lowest volatility); -1 where the volatility is not finite."""
    v = np.asarray(realised_vol, dtype=float)
    reg = np.searchsorted(np.asarray(thresholds, dtype=float), v, side="right").astype(np.int64)
    reg[~np.isfinite(v)] = -1
    return reg


def regime_names(n_regimes: int) -> list[str]:
    if n_regimes == 1:
        return ["all"]
    if n_regimes == 2:
        return ["low-vol", "high-vol"]
    return [f"vol-q{k + 1}" for k in range(n_regimes)]


def split_holdout(idx: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Chronological split of sample indices: the last ``fraction`` is held out."""
    idx = np.sort(np.asarray(idx))
    n_test = int(round(len(idx) * fraction))
    n_test = min(max(n_test, 1 if len(idx) > 1 else 0), max(len(idx) - 1, 0))
    return idx[: len(idx) - n_test], idx[len(idx) - n_test :]


# ------------------------------------------------------------------------------------- ridge
def _ridge_r2(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray, alpha: float) -> float:
    """R² on (Xte, yte) of a ridge fitted on (Xtr, ytr); X standardised on the fit samples."""
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd[sd < 1e-12] = 1.0
    A = (Xtr - mu) / sd
    B = (Xte - mu) / sd
    ym = ytr.mean()
    yc = ytr - ym
    n, h = A.shape
    if n < h:  # dual form: w = Aᵀ (A Aᵀ + αI)⁻¹ y
        K = A @ A.T
        K[np.diag_indices_from(K)] += alpha
        w = A.T @ np.linalg.solve(K, yc)
    else:
        G = A.T @ A
        G[np.diag_indices_from(G)] += alpha
        w = np.linalg.solve(G, A.T @ yc)
    pred = B @ w + ym
    ss_res = float(np.sum((yte - pred) ** 2))
    ss_tot = float(np.sum((yte - yte.mean()) ** 2))
    if ss_tot <= 0:
        return float("nan")
    return 1.0 - ss_res / ss_tot


def intensity(
    features_by_layer: Mapping[int, np.ndarray],
    targets: np.ndarray,
    regimes: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    n_regimes: int | None = None,
    alpha: float = 1.0,
    min_samples: int = 20,
) -> np.ndarray:
    """Fluorescence intensity ``φ[layer, task, regime] = max(0, held-out R²)``.

    :param features_by_layer: layer -> float array ``[N, H]`` (rows are the probed samples).
    :param targets: ``[N, T]`` (NaN where a target is invalid).
    :param regimes: ``[N]`` regime index per sample (-1 = none).
    :param train_idx, test_idx: row indices (into N) used to fit / score the probes.
    :param min_samples: fewer fit or scoring samples than this in a regime -> NaN.
    :returns: ``[L, T, R]`` float array, layers in ``sorted(features_by_layer)`` order.
    """
    layers = sorted(features_by_layer)
    Y = np.asarray(targets, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    reg = np.asarray(regimes)
    R = int(n_regimes if n_regimes is not None else (reg.max() + 1 if (reg >= 0).any() else 1))
    phi = np.full((len(layers), Y.shape[1], R), np.nan)
    train_idx = np.asarray(train_idx)
    test_idx = np.asarray(test_idx)
    for r in range(R):
        tr_r = train_idx[reg[train_idx] == r]
        te_r = test_idx[reg[test_idx] == r]
        for t in range(Y.shape[1]):
            tr = tr_r[np.isfinite(Y[tr_r, t])]
            te = te_r[np.isfinite(Y[te_r, t])]
            if len(tr) < min_samples or len(te) < min_samples:
                continue
            for li, layer in enumerate(layers):
                H = np.asarray(features_by_layer[layer], dtype=np.float64)
                r2 = _ridge_r2(H[tr], Y[tr, t], H[te], Y[te, t], alpha)
                phi[li, t, r] = max(0.0, r2) if np.isfinite(r2) else np.nan
    return phi


def normalise(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Φ = φ / Σ_layers φ`` per (task, regime), and the ``informative`` mask ``[T, R]``.

    All-zero columns (no layer explains the task) become uniform ``1/L`` with informative False;
    columns containing NaN (regime/task could not be scored) stay NaN with informative False.
    """
    phi = np.asarray(phi, dtype=float)
    L = phi.shape[0]
    total = phi.sum(axis=0)  # NaN if any NaN
    Phi = np.full_like(phi, np.nan)
    informative = np.isfinite(total) & (total > 0)
    zero = np.isfinite(total) & (total <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        Phi[:, informative] = phi[:, informative] / total[informative]
    Phi[:, zero] = 1.0 / L
    return Phi, informative


def peak_band(Phi: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Start / end (exclusive) layer *positions* ``[T, R]`` of the ``width`` consecutive layers with most Φ.

    Ties go to the earliest band; a NaN column gives the middle band.
    """
    L, T, R = Phi.shape
    width = int(min(max(width, 1), L))
    start = np.zeros((T, R), dtype=np.int64)
    csum = np.concatenate([np.zeros((1, T, R)), np.cumsum(np.nan_to_num(Phi, nan=0.0), axis=0)], axis=0)
    sums = csum[width:] - csum[:-width]  # [L - width + 1, T, R]
    start[:] = np.argmax(sums, axis=0)
    nan_cols = ~np.isfinite(Phi).all(axis=0)
    start[nan_cols] = (L - width) // 2
    return start, start + width


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def specialisation_index(Phi: np.ndarray) -> np.ndarray:
    """Mean pairwise Jensen–Shannon divergence (base 2) between task profiles, per regime ``[R]``.

    0 = every task reads the same layers; 1 = tasks live in disjoint layers.  NaN task columns are
    skipped; fewer than two usable tasks gives NaN.
    """
    L, T, R = Phi.shape
    out = np.full(R, np.nan)
    for r in range(R):
        cols = [Phi[:, t, r] for t in range(T) if np.isfinite(Phi[:, t, r]).all()]
        pairs = [_js(cols[i], cols[j]) for i in range(len(cols)) for j in range(i + 1, len(cols))]
        if pairs:
            out[r] = float(np.mean(pairs))
    return out


# -------------------------------------------------------------------------------- excitation
HiddenFn = Callable[[Any], Mapping[int, np.ndarray]]
PerturbFn = Callable[[Any, int], Any]


def field_perturbation(columns_by_task: Mapping[int, Sequence[int]], size: float, scale: np.ndarray) -> PerturbFn:
    """A perturbation ``δ_τ`` for inputs ``X [N, W, F]``: add ``size × scale[f]`` to task τ's own feature
    columns f at the most recent time step (``scale``: per-feature std on the training split)."""
    scale = np.asarray(scale, dtype=np.float32)

    def perturb(X: np.ndarray, task: int) -> np.ndarray:
        Xp = np.array(X, dtype=np.float32, copy=True)
        cols = list(columns_by_task.get(task, ()))
        if not cols:
            raise ConfigError(f"no input columns for task {task} to perturb", key="probe.params.excitation")
        Xp[:, -1, cols] += size * scale[cols]
        return Xp

    return perturb


def excitation(
    hidden_fn: HiddenFn,
    inputs: np.ndarray,
    perturb: PerturbFn,
    n_tasks: int,
    regimes: np.ndarray,
    *,
    n_regimes: int,
    seed: int = 0,
) -> np.ndarray:
    """Excitation map ``E[layer, task, regime]`` (see module docstring), not yet normalised.

    :param hidden_fn: inputs -> {layer: [N, H]} (the teacher, or a fake in tests).
    :param inputs: the probed samples (array indexable along axis 0).
    :param perturb: ``(inputs, task) -> perturbed inputs``.
    :param regimes: ``[N]`` regime of each of ``inputs``.
    """
    base = hidden_fn(inputs)
    layers = sorted(base)
    n = len(regimes)
    rng = np.random.default_rng(seed)
    pair = rng.permutation(n)
    same = pair == np.arange(n)
    pair[same] = (pair[same] + 1) % max(n, 1)
    reg = np.asarray(regimes)
    E = np.full((len(layers), n_tasks, n_regimes), np.nan)
    denom = {l: np.linalg.norm(base[l] - base[l][pair], axis=1) for l in layers}
    for t in range(n_tasks):
        hp = hidden_fn(perturb(inputs, t))
        for li, l in enumerate(layers):
            num = np.linalg.norm(np.asarray(hp[l]) - np.asarray(base[l]), axis=1)
            for r in range(n_regimes):
                m = reg == r
                if m.sum() == 0:
                    continue
                d = denom[l][m].mean()
                E[li, t, r] = num[m].mean() / d if d > 0 else np.nan
    return E


# ------------------------------------------------------------------------------------ result
def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    n = np.isfinite(a).sum(axis=axis)
    s = np.nansum(a, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


@dataclass
class ProbeResult:
    """Everything the probe found; ``save``/``load`` round-trip through ``probe.json``."""

    layers: list[int]
    tasks: list[str]
    regimes: list[str]
    thresholds: list[float]
    phi: np.ndarray  # [L, T, R] raw intensity
    Phi: np.ndarray  # [L, T, R] normalised
    informative: np.ndarray  # [T, R] bool
    band_width: int
    peak_start: np.ndarray  # [T, R] layer positions
    peak_end: np.ndarray  # [T, R] exclusive
    specialisation: np.ndarray  # [R]
    method: str = "intensity"
    excitation: np.ndarray | None = None  # [L, T, R] normalised excitation map
    meta: dict[str, Any] = field(default_factory=dict)

    def peak_layers(self, task: int, regime: int) -> list[int]:
        """Layer ids of the peak band of ``task`` in ``regime``."""
        s, e = int(self.peak_start[task, regime]), int(self.peak_end[task, regime])
        return self.layers[s:e]

    def task_band(self, task: int) -> list[int]:
        """Peak band of the regime-averaged profile of ``task`` (used by the task students)."""
        return self._band_of(_nanmean(self.Phi[:, task, :], axis=1))

    def _band_of(self, profile: np.ndarray) -> list[int]:
        prof = np.asarray(profile, dtype=float)[:, None, None]
        if not np.isfinite(prof).all():
            prof = np.full_like(prof, 1.0 / len(self.layers))
        s, e = peak_band(prof, self.band_width)
        return self.layers[int(s[0, 0]) : int(e[0, 0])]

    def regime_band(self, regime: int) -> list[int]:
        """Peak band of the task-averaged profile in ``regime`` (used by the data students)."""
        return self._band_of(_nanmean(self.Phi[:, :, regime], axis=1))

    def to_dict(self) -> dict[str, Any]:
        def arr(a: np.ndarray | None) -> Any:
            if a is None:
                return None
            a = np.asarray(a)
            if a.dtype == bool:
                return a.tolist()
            return np.where(np.isfinite(a), a, np.nan).astype(float).tolist() if a.dtype.kind == "f" else a.tolist()

        d = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        for k in ("phi", "Phi", "informative", "peak_start", "peak_end", "specialisation", "excitation"):
            d[k] = arr(getattr(self, k))
        d["specialisation_index"] = float(np.nanmean(self.specialisation)) if np.isfinite(self.specialisation).any() else None
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=True)
        path.write_text(text.replace("NaN", "null"))
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProbeResult":
        def f(x: Any) -> np.ndarray:
            return np.array(x, dtype=float)  # None -> nan

        return cls(
            layers=[int(x) for x in d["layers"]],
            tasks=list(d["tasks"]),
            regimes=list(d["regimes"]),
            thresholds=[float(x) for x in d["thresholds"]],
            phi=f(d["phi"]),
            Phi=f(d["Phi"]),
            informative=np.array(d["informative"], dtype=bool),
            band_width=int(d["band_width"]),
            peak_start=np.array(d["peak_start"], dtype=np.int64),
            peak_end=np.array(d["peak_end"], dtype=np.int64),
            specialisation=f(d["specialisation"]),
            method=d.get("method", "intensity"),
            excitation=None if d.get("excitation") is None else f(d["excitation"]),
            meta=dict(d.get("meta") or {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> "ProbeResult":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ----------------------------------------------------------------------------------- display
def _cell_style(v: float) -> str:
    if not np.isfinite(v):
        return "dim"
    # white -> deep green with intensity; Φ is in [0, 1]
    g = int(60 + 195 * min(max(v, 0.0), 1.0))
    r = int(40 * (1 - min(max(v, 0.0), 1.0)))
    return f"black on rgb({r},{g},{r})" if v > 0.35 else f"white on rgb({r},{g // 2 + 20},{r})"


def render_heatmaps(result: ProbeResult, console: "Console") -> None:
    """One layers × (regime, task) table of Φ, cells coloured by value; ``*`` marks the peak band."""
    from rich.table import Table

    spec = ", ".join(f"{r} {si:.3f}" for r, si in zip(result.regimes, result.specialisation) if np.isfinite(si))
    title = f"Fluorescent probe Φ ({result.method}) per regime and task" + (f" — specialisation {spec}" if spec else "")
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("layer", justify="right")
    for rname in result.regimes:
        for t in result.tasks:
            table.add_column(f"{rname}\n{t}", justify="center")
    for li, layer in enumerate(result.layers):
        cells = []
        for r in range(len(result.regimes)):
            for t in range(len(result.tasks)):
                v = float(result.Phi[li, t, r])
                in_band = result.peak_start[t, r] <= li < result.peak_end[t, r]
                txt = ("  n/a " if not np.isfinite(v) else f" {v:.3f}") + ("*" if in_band else " ")
                cells.append(f"[{_cell_style(v)}]{txt}[/]")
        table.add_row(str(layer), *cells)
    console.print(table)


def plot_heatmaps(result: ProbeResult, path: str | Path) -> Path:
    """One heat-map panel per regime (layers × tasks) as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    R = len(result.regimes)
    fig, axes = plt.subplots(1, R, figsize=(2.2 + 1.6 * R * max(1, len(result.tasks)) / 2, 0.25 * len(result.layers) + 2), squeeze=False)
    for r in range(R):
        ax = axes[0, r]
        im = ax.imshow(result.Phi[:, :, r], aspect="auto", cmap="viridis", vmin=0, vmax=max(1e-9, float(np.nanmax(result.Phi)) if np.isfinite(result.Phi).any() else 1))
        ax.set_xticks(range(len(result.tasks)), result.tasks)
        ax.set_yticks(range(len(result.layers)), [str(l) for l in result.layers], fontsize=6)
        ax.set_title(result.regimes[r])
        for t in range(len(result.tasks)):
            s, e = result.peak_start[t, r], result.peak_end[t, r]
            ax.add_patch(plt.Rectangle((t - 0.5, s - 0.5), 1, e - s, fill=False, edgecolor="red", lw=1.5))
        ax.set_xlabel("task")
        if r == 0:
            ax.set_ylabel("layer")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="Φ")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------ plugin
class FluorescentProbe(Probe):
    """Normalised fluorescent probe: ridge probes per layer × task × volatility regime."""

    name = "fluorescent"

    class Config(Probe.Config):
        alpha: float = Field(default=10.0, gt=0, description="Ridge penalty of the stain probes (features standardised on the fit samples).")
        n_regimes: int = Field(default=2, ge=1, le=8, description="Number of realised-volatility regimes (quantile bins of the training split's past-only realised vol); 2 = low / high.")
        holdout_fraction: float = Field(default=0.3, gt=0, lt=1, description="Chronologically last fraction of the training samples held out to score the probes (R²).")
        min_samples: int = Field(default=20, ge=2, description="Minimum fit and scoring samples per regime and task; below it φ is NaN.")
        band_width: int = Field(default=3, ge=1, description="Number of consecutive layers in a peak band.")
        excitation: bool = Field(default=False, description="Also compute the excitation map (needs extra teacher forwards per task).")
        perturbation_size: float = Field(default=1.0, gt=0, description="Excitation δ_τ: this many training-std of each of the task's input fields, added at the last time step.")
        excitation_samples: int = Field(default=64, ge=4, description="Samples used for the excitation map (teacher forwards = samples × (tasks + 1)).")
        drive: str = Field(default="intensity", pattern="^(intensity|excitation)$", description="Which map drives OFDD (peak bands): `intensity` or `excitation`.")

    def probe(self, features, targets, realised_vol, *, windows, hidden_states, feature_names, input_scale, seed) -> ProbeResult:
        """The interface call (:meth:`Probe.probe`): the excitation map when configured, then :meth:`run`."""
        c = self.config
        n = len(realised_vol)
        ex_map = None
        if c.excitation:
            ok = np.isfinite(realised_vol)
            th = np.quantile(realised_vol[ok], np.arange(1, c.n_regimes) / c.n_regimes) if c.n_regimes > 1 else np.zeros(0)
            pick = np.linspace(0, n - 1, min(c.excitation_samples, n)).round().astype(int)
            cols = {t: [feature_names.index(f) for f in EXCITATION_FIELDS[name]] for t, name in enumerate(TASKS)}
            ex_map = excitation(hidden_states, windows[pick], field_perturbation(cols, c.perturbation_size, input_scale), len(TASKS),
                                assign_regimes(realised_vol[pick], th), n_regimes=c.n_regimes, seed=seed)
        return self.run(features, targets, realised_vol, np.arange(n), excitation_map=ex_map)

    def run(
        self,
        features_by_layer: Mapping[int, np.ndarray],
        targets: np.ndarray,
        realised_vol: np.ndarray,
        train_idx: np.ndarray,
        *,
        tasks: Sequence[str] = TASKS,
        excitation_map: np.ndarray | None = None,
    ) -> ProbeResult:
        """Fit regimes and probes on ``train_idx`` rows (chronological held-out tail) of the probed samples.

        :param features_by_layer: layer -> ``[N, H]`` hidden states of the probed samples.
        :param targets: ``[N, T]`` targets of the probed samples.
        :param realised_vol: ``[N]`` past-only realised volatility of the probed samples.
        :param train_idx: rows (into N) from the training split.
        :param excitation_map: optional raw excitation map from :func:`excitation`.
        """
        c = self.config
        thresholds = regime_thresholds(realised_vol, train_idx, c.n_regimes)
        reg = assign_regimes(realised_vol, thresholds)
        fit_idx, held_idx = split_holdout(train_idx, c.holdout_fraction)
        phi = intensity(features_by_layer, targets, reg, fit_idx, held_idx, n_regimes=c.n_regimes, alpha=c.alpha, min_samples=c.min_samples)
        Phi, informative = normalise(phi)
        ex = None
        if excitation_map is not None:
            ex, _ = normalise(excitation_map)
        drive = ex if (c.drive == "excitation" and ex is not None) else Phi
        if c.drive == "excitation" and ex is None:
            raise ConfigError("drive: excitation needs excitation: true and a teacher that can be re-run on perturbed inputs", key="probe.params.drive")
        start, end = peak_band(drive, c.band_width)
        return ProbeResult(
            layers=sorted(int(l) for l in features_by_layer),
            tasks=list(tasks),
            regimes=regime_names(c.n_regimes),
            thresholds=[float(x) for x in thresholds],
            phi=phi,
            Phi=Phi,
            informative=informative,
            band_width=int(min(c.band_width, len(features_by_layer))),
            peak_start=start,
            peak_end=end,
            specialisation=specialisation_index(drive),
            method=c.drive,
            excitation=ex,
            meta={"alpha": c.alpha, "holdout_fraction": c.holdout_fraction, "n_fit": int(len(fit_idx)), "n_held_out": int(len(held_idx))},
        )
