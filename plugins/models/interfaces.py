"""What the model pipeline calls on each model kind: ``teacher``, ``probe``, ``student``, ``moe``.

A plugin adds a model by subclassing one of these bases and registering the class with
``cmm_bt_register_components``; the stages of the ``teacher``, ``probe``, ``students`` and ``moe``
sections (:mod:`cmm_bt_plugins.llm.stages`, :mod:`cmm_bt_plugins.cmm.stages`) then drive it through
exactly the methods below.  Inputs are market windows of a
:class:`~cmm_bt_plugins.features.market.FeatureSet` (``X [n, W, F]``, past data only); tasks are
:data:`~cmm_bt_plugins.models.signals.TASKS` in order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from pydantic import Field

from cmm_bt.components import Component, Params

from cmm_bt_plugins.features.market import FeatureSet, WindowSpec
from cmm_bt_plugins.llm.feature_cache import LayerFeatures, open_cache
from cmm_bt_plugins.llm.heads import HeadsConfig

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt_plugins.cmm.ofdd import StudentSet, TeacherData
    from cmm_bt_plugins.cmm.probe import ProbeResult


# ------------------------------------------------------------------------------------ teacher
class TeacherParams(Params):
    """Options every teacher shares: its inputs and which samples get features."""

    inputs: WindowSpec = Field(default_factory=WindowSpec, description="Window, levels and horizon of the inputs and targets.")
    batch_size: int = Field(16, ge=1, le=4096, description="Windows per hidden_states call during feature extraction.")
    stride: int = Field(1, ge=1, description="Training/validation: only every stride-th decision step gets teacher features.")
    max_samples: int | None = Field(2000, ge=1, description="Training/validation: at most this many samples per split (evenly thinned); null = no cap.")
    replay_max_samples: int | None = Field(
        5000, ge=1,
        description="Replay split: teacher features on every step up to this many; beyond it every k-th step "
        "(k = ceil(N / replay_max_samples)) and each prediction is held until the next one.",
    )
    chunk_size: int = Field(256, ge=1, description="Samples per stored chunk (the unit of resumption after an interruption).")
    latency_samples: int = Field(16, ge=1, description="Windows timed at batch 1 for the decision latency (after 2 warm-up calls).")
    heads: HeadsConfig = Field(default_factory=HeadsConfig, description="Per-task heads fitted on the teacher features.")


class Teacher(Component):
    """A model whose per-layer hidden states of a market window are features to distil.

    Implement :meth:`identity`, :meth:`layers`, :meth:`hidden_size`, :meth:`hidden_states` and
    :meth:`n_params`; :meth:`extract` and :meth:`decision_latency_us` are built on them.
    """

    kind = "teacher"
    Config = TeacherParams

    def identity(self) -> dict[str, Any]:
        """JSON-able facts naming the model and every option that changes its features (cache keys)."""
        raise NotImplementedError

    def layers(self) -> list[int]:
        """The layers whose hidden states are kept, sorted (0 = the input embedding)."""
        raise NotImplementedError

    def hidden_size(self) -> int:
        raise NotImplementedError

    def hidden_states(self, X: np.ndarray, fs: FeatureSet) -> dict[int, np.ndarray]:
        """``{layer: float32 [n, hidden_size]}`` for windows ``X [n, W, F]`` laid out like ``fs``
        (``fs.feature_names``, ``fs.spec``), in one call (batching is the caller's)."""
        raise NotImplementedError

    def n_params(self) -> int:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Facts for the report (e.g. load time); default none."""
        return {}

    def batch_order(self, X: np.ndarray, fs: FeatureSet) -> np.ndarray | None:
        """The order in which :meth:`extract` batches the windows ``X`` of one chunk (a permutation of
        ``range(len(X))``, e.g. by input length to cut padding), or None (default: as given).  It must
        not change any feature: results are put back in the original order."""
        return None

    def extract(self, fs: FeatureSet, store: str | Path, indices: np.ndarray, *, label: str = "teacher features",
                console: "Console | None" = None, progress: bool = True) -> LayerFeatures:
        """Hidden states of rows ``indices`` of ``fs``, written chunk by chunk into the folder
        ``store`` (an interrupted extraction resumes at its last complete chunk)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        indices = np.asarray(indices, dtype=np.int64)
        cache = open_cache(Path(store), indices, self.layers(), self.hidden_size(), meta={"label": label, "teacher": self.identity()})
        bs, chunk = self.config.batch_size, self.config.chunk_size
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} samples/s"), TimeRemainingColumn()]
        t0, done0 = time.perf_counter(), cache.done
        with Progress(*columns, console=console, disable=not progress or cache.complete, transient=False) as bar:
            task = bar.add_task(label, total=cache.n, completed=cache.done, rate="-")
            while cache.done < cache.n:
                lo = cache.done
                rows = cache.indices[lo:min(cache.n, lo + chunk)]
                block = {l: np.empty((len(rows), cache.hidden), np.float32) for l in cache.layers}
                order = self.batch_order(fs.X[rows], fs)
                order = np.arange(len(rows)) if order is None else np.asarray(order, dtype=np.int64)
                for b in range(0, len(rows), bs):
                    pos = order[b:b + bs]
                    feats = self.hidden_states(fs.X[rows[pos]], fs)
                    for l in cache.layers:
                        block[l][pos] = feats[l]
                    done = lo + b + len(pos)
                    bar.update(task, completed=done, rate=f"{(done - done0) / max(time.perf_counter() - t0, 1e-9):.1f}")
                cache.write_chunk(lo, block)
        return cache.features()

    def decision_latency_us(self, X: np.ndarray, fs: FeatureSet, warmup: int = 2) -> dict[str, Any]:
        """Wall time of one decision (one window, batch 1, model loaded): ``{"p50", "p99", "mean", "samples"}`` in µs."""
        if len(X) == 0:
            raise ValueError("decision_latency_us needs at least one window")
        for i in range(min(warmup, len(X))):
            self.hidden_states(X[i:i + 1], fs)
        lat = []
        for i in range(len(X)):
            t = time.perf_counter_ns()
            self.hidden_states(X[i:i + 1], fs)
            lat.append((time.perf_counter_ns() - t) / 1e3)
        a = np.asarray(lat)
        return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "samples": lat}


# -------------------------------------------------------------------------------------- probe
class Probe(Component):
    """Maps where each task's information lives across the teacher's layers (and data regimes)."""

    kind = "probe"

    def probe(self, features: Mapping[int, np.ndarray], targets: np.ndarray, realised_vol: np.ndarray, *,
              windows: np.ndarray, hidden_states: Callable[[np.ndarray], dict[int, np.ndarray]],
              feature_names: list[str], input_scale: np.ndarray, seed: int) -> "ProbeResult":
        """Probe the training split's teacher samples.

        :param features: layer -> ``float32 [n, hidden]`` teacher features of the samples.
        :param targets: ``[n, T]`` targets (NaN where invalid); :param realised_vol: ``[n]`` past-only.
        :param windows: ``[n, W, F]`` the samples' input windows; ``hidden_states(windows)`` re-runs
            the teacher on (perturbed) windows, for excitation-style probes; ``input_scale [F]`` is
            each input feature's standard deviation on the training split (perturbation units).
        :returns: a :class:`~cmm_bt_plugins.cmm.probe.ProbeResult` (maps, peak bands, regime thresholds).
        """
        raise NotImplementedError


# ------------------------------------------------------------------------------------ student
class Student(Component):
    """A family of small models distilled from the teacher (one set of students per run)."""

    kind = "student"

    def distil(self, data: "TeacherData", X: np.ndarray, Y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
               regimes: np.ndarray | None, probe: "ProbeResult | None", seed: int, console: "Console | None") -> "StudentSet":
        """Train the students on windows ``X [N, W, F]`` and targets ``Y [N, T]`` (NaN = invalid),
        train rows ``train_idx``, early stopping / selection on ``val_idx``, matching the teacher's
        features and predictions on ``data.sel_idx``; ``regimes [N]`` and ``probe`` when a probe ran."""
        raise NotImplementedError

    def save(self, students: "StudentSet", folder: Path) -> None:
        """Write a trained set to ``folder`` (the pipeline caches it)."""
        raise NotImplementedError

    def load(self, folder: Path) -> "StudentSet":
        raise NotImplementedError


# ---------------------------------------------------------------------------------------- moe
class MoE(Component):
    """Mixes the experts (students) that predict a task into one prediction per sample."""

    kind = "moe"

    def fit_task(self, task: int, preds: np.ndarray, emb: np.ndarray, y: np.ndarray) -> None:
        """Fit on validation rows: ``preds [N, K]`` expert predictions, ``emb [N, K, D]`` their
        common-space embeddings, ``y [N]`` the truth (NaN = invalid).  Default: nothing to fit."""

    def combine(self, task: int, preds: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y [N], weights [N, K])``: the mixture's prediction and each expert's weight per sample."""
        raise NotImplementedError


MODEL_KINDS: dict[str, type[Component]] = {"teacher": Teacher, "probe": Probe, "student": Student, "moe": MoE}
"""The model kinds and their base classes (declared by the plugins that drive them)."""
