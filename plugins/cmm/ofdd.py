"""OFDD: orthogonal feature decomposition distillation (the student trainer, numpy in / numpy out).

Students come in families, one decoupling axis varied at a time:

* ``layer``: one student per contiguous layer band (``layer_bands`` bands), predicting all tasks,
  aligned to its band's PCA features, trained on all regimes;
* ``task``: one student per task, predicting that task, aligned to the task's peak band (of the
  regime-averaged probe profile), trained on all regimes;
* ``data``: one student per volatility regime, predicting all tasks, trained (and early-stopped)
  on that regime's samples only, aligned to the peak band of the task-averaged profile in that
  regime (the layers that carry most information *in that regime*);
* baselines: ``kd-output`` (one student, all tasks, λ_f = 0) and ``kd-fitnets`` (one student, all
  tasks, aligned to one teacher layer's PCA features).

Loss per student (targets and teacher predictions standardised with the training split's target
mean / std, PCA coordinates scaled to unit mean variance)::

    λ_f · mean_f‖P z − PCA_ℓ(h_ℓ)‖² + λ_s · mean‖ŷ − ŷᵀ‖² + λ_y · mean‖ŷ − y‖² + λ_d · decor

λ_f and λ_s terms average over the samples that have teacher features / predictions (a subset:
the teacher runs with a stride), λ_y over samples with a valid target.  ``decor`` is the mean
squared cross-correlation between this student's batch embeddings and those of the students of
the run trained before it (frozen), so later students are pushed away from earlier ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from cmm_bt.errors import ConfigError

from cmm_bt_plugins.cmm.probe import TASKS, ProbeResult
from cmm_bt_plugins.cmm.students import TorchStudent

if TYPE_CHECKING:
    from rich.console import Console


# ------------------------------------------------------------------------------------ inputs
@dataclass
class TeacherData:
    """Teacher outputs on the subset of samples it was run on.

    :ivar sel_idx: ``[N_sel]`` rows of ``X`` the teacher saw (ascending).
    :ivar features: layer -> ``[N_sel, H]`` last-token hidden states.
    :ivar preds: ``[N_sel, T]`` teacher-head predictions ŷᵀ (NaN where missing), or None.
    """

    sel_idx: np.ndarray
    features: Mapping[int, np.ndarray]
    preds: np.ndarray | None = None

    @property
    def layers(self) -> list[int]:
        return sorted(int(l) for l in self.features)


@dataclass(frozen=True)
class StudentSpec:
    """What one student learns: its outputs, the teacher band it matches and its data."""

    key: str
    family: str
    tasks: tuple[int, ...]
    band: tuple[int, ...]
    regime: int | None = None


def layer_bands(layers: Sequence[int], n_bands: int) -> list[tuple[int, ...]]:
    """Split the probed layers into ``n_bands`` contiguous bands of near-equal size."""
    n_bands = min(n_bands, len(layers))
    return [tuple(int(x) for x in b) for b in np.array_split(np.asarray(sorted(layers)), n_bands)]


def plan_students(
    families: Sequence[str],
    layers: Sequence[int],
    probe: ProbeResult | None,
    *,
    n_bands: int = 3,
    n_tasks: int = 3,
    n_regimes: int = 2,
    fitnets_layer: int | None = None,
    task_names: Sequence[str] = TASKS,
    regime_names: Sequence[str] | None = None,
) -> list[StudentSpec]:
    """The students of the requested families, in training order."""
    specs: list[StudentSpec] = []
    all_tasks = tuple(range(n_tasks))
    rnames = list(regime_names or (probe.regimes if probe else [f"r{r}" for r in range(n_regimes)]))
    for fam in families:
        if fam in ("task", "data") and probe is None:
            raise ConfigError(f"the {fam} family needs a probe (add a `probe:` section)", key="students.params.families")
        if fam == "layer":
            for b in layer_bands(layers, n_bands):
                specs.append(StudentSpec(f"layer:{b[0]}-{b[-1]}", "layer", all_tasks, b))
        elif fam == "task":
            for t in range(n_tasks):
                specs.append(StudentSpec(f"task:{task_names[t]}", "task", (t,), tuple(probe.task_band(t))))
        elif fam == "data":
            for r in range(len(rnames)):
                specs.append(StudentSpec(f"data:{rnames[r]}", "data", all_tasks, tuple(probe.regime_band(r)), r))
        elif fam == "kd-output":
            specs.append(StudentSpec("kd-output", "kd-output", all_tasks, ()))
        elif fam == "kd-fitnets":
            lay = sorted(layers)
            l = fitnets_layer if fitnets_layer is not None else lay[len(lay) // 2]
            if l not in lay:
                raise ConfigError(f"fitnets_layer {l} is not among the teacher's layers {lay}", key="students.params.fitnets_layer")
            specs.append(StudentSpec(f"kd-fitnets:{l}", "kd-fitnets", all_tasks, (int(l),)))
        else:
            raise ConfigError(f"unknown student family {fam!r}", key="students.params.families")
    return specs


# --------------------------------------------------------------------------------------- PCA
@dataclass
class BandPCA:
    """PCA of the concatenated, per-dimension standardised hidden states of a band's layers.

    ``transform(h) = ((h − mean) / sd) @ components / norm`` where ``norm`` is the root mean of the
    kept variances, so the coordinates have unit mean variance.
    """

    layers: tuple[int, ...]
    mean: np.ndarray
    sd: np.ndarray
    components: np.ndarray  # [D, p]
    norm: float

    @classmethod
    def fit(cls, features: Mapping[int, np.ndarray], layers: Sequence[int], rows: np.ndarray, dim: int) -> "BandPCA":
        A = np.concatenate([np.asarray(features[l], dtype=np.float64)[rows] for l in layers], axis=1)
        mean = A.mean(0)
        sd = A.std(0)
        sd[sd < 1e-8] = 1.0
        A = (A - mean) / sd
        n, D = A.shape
        p = int(min(dim, n - 1, D))
        if p < 1:
            raise ConfigError(f"too few teacher samples ({n}) to fit a PCA", key="students.params.pca_dim")
        if n <= D:  # Gram trick: eigenvectors of A Aᵀ
            vals, U = np.linalg.eigh(A @ A.T)
            order = np.argsort(vals)[::-1][:p]
            vals, U = np.clip(vals[order], 1e-12, None), U[:, order]
            comps = A.T @ U / np.sqrt(vals)
        else:
            vals, V = np.linalg.eigh(A.T @ A)
            order = np.argsort(vals)[::-1][:p]
            vals, comps = np.clip(vals[order], 1e-12, None), V[:, order]
        # deterministic sign: largest |loading| positive
        signs = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(p)])
        comps = comps * np.where(signs == 0, 1, signs)
        norm = float(np.sqrt(np.mean(vals / n)))
        return cls(tuple(int(l) for l in layers), mean, sd, comps, norm if norm > 0 else 1.0)

    @property
    def dim(self) -> int:
        return self.components.shape[1]

    def transform(self, features: Mapping[int, np.ndarray], rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        A = np.concatenate([np.asarray(features[l], dtype=np.float64)[rows] for l in self.layers], axis=1)
        return ((A - self.mean) / self.sd) @ self.components / self.norm


def _ridge_map(A: np.ndarray, B: np.ndarray, alpha: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares map ``B ≈ A @ M + c`` with a small ridge (fixed, fitted on train)."""
    am, bm = A.mean(0), B.mean(0)
    Ac, Bc = A - am, B - bm
    G = Ac.T @ Ac
    G[np.diag_indices_from(G)] += alpha * len(A)
    M = np.linalg.solve(G, Ac.T @ Bc)
    return M, bm - am @ M


# ----------------------------------------------------------------------------------- results
@dataclass
class TrainedStudent:
    """One trained student and how to read its outputs."""

    spec: StudentSpec
    net: Any  # StudentNet (torch)
    n_params: int
    common_map: np.ndarray  # [p, c]: P z (band PCA coords) -> common space
    common_bias: np.ndarray  # [c]
    meta: dict[str, Any] = field(default_factory=dict)

    def forward_std(self, Xs: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Standardised predictions ``[N, len(tasks)]`` and common-space embeddings ``[N, c]``."""
        import torch

        ys, es = [], []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, len(Xs), batch):
                _, yh, pz = self.net(torch.from_numpy(np.ascontiguousarray(Xs[i : i + batch], dtype=np.float32)))
                ys.append(yh.numpy())
                es.append(pz.numpy())
        y = np.concatenate(ys) if ys else np.zeros((0, len(self.spec.tasks)), np.float32)
        pz = np.concatenate(es) if es else np.zeros((0, self.common_map.shape[0]), np.float32)
        return y, pz[:, : self.common_map.shape[0]] @ self.common_map + self.common_bias


@dataclass
class StudentSet:
    """The trained students of a run, with the input / target standardisation they share."""

    students: list[TrainedStudent]
    x_mean: np.ndarray  # [F]
    x_std: np.ndarray
    y_mean: np.ndarray  # [T]
    y_std: np.ndarray
    tasks: list[str]
    common_dim: int
    window: int = 0

    def standardise(self, X: np.ndarray) -> np.ndarray:
        return np.nan_to_num((np.asarray(X, dtype=np.float32) - self.x_mean) / self.x_std, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``preds [K, N, T]`` in target units (NaN for tasks a student does not predict) and
        common-space embeddings ``emb [K, N, c]``."""
        Xs = self.standardise(X)
        K, N, T = len(self.students), len(Xs), len(self.tasks)
        preds = np.full((K, N, T), np.nan)
        emb = np.zeros((K, N, self.common_dim))
        for k, st in enumerate(self.students):
            y, e = st.forward_std(Xs)
            for j, t in enumerate(st.spec.tasks):
                preds[k, :, t] = y[:, j] * self.y_std[t] + self.y_mean[t]
            emb[k] = e
        return preds, emb

    def experts_for(self, task: int) -> list[int]:
        return [k for k, s in enumerate(self.students) if task in s.spec.tasks]

    def save(self, folder: Path) -> None:
        """Write the set (weights, maps, specs, standardisation) to ``folder``."""
        import torch

        blob = {
            "x_mean": self.x_mean, "x_std": self.x_std, "y_mean": self.y_mean, "y_std": self.y_std,
            "tasks": self.tasks, "common_dim": self.common_dim, "window": self.window,
            "students": [{"spec": asdict(s.spec), "n_params": s.n_params, "meta": s.meta,
                          "common_map": s.common_map, "common_bias": s.common_bias} for s in self.students],
        }
        np.save(folder / "students.npy", np.array(blob, dtype=object), allow_pickle=True)
        for k, s in enumerate(self.students):
            torch.save(s.net.state_dict(), folder / f"student_{k:02d}.pt")

    @classmethod
    def load(cls, folder: Path, build: Any) -> "StudentSet":
        """The set in ``folder``; ``build(window, n_features, n_outputs, proj_dim)`` makes each net."""
        import torch

        blob = np.load(folder / "students.npy", allow_pickle=True).item()
        window, n_features = int(blob["window"]), int(np.asarray(blob["x_mean"]).shape[-1])
        students = []
        for k, d in enumerate(blob["students"]):
            spec = StudentSpec(**{**d["spec"], "tasks": tuple(d["spec"]["tasks"]), "band": tuple(d["spec"]["band"])})
            net = build(window, n_features, len(spec.tasks), int(d["meta"]["proj_dim"]))
            net.load_state_dict(torch.load(folder / f"student_{k:02d}.pt", weights_only=True))
            net.eval()
            students.append(TrainedStudent(spec, net, int(d["n_params"]), d["common_map"], d["common_bias"], dict(d["meta"])))
        return cls(students, blob["x_mean"], blob["x_std"], blob["y_mean"], blob["y_std"], list(blob["tasks"]), int(blob["common_dim"]), window)

    @property
    def n_params(self) -> int:
        return int(sum(s.n_params for s in self.students))


# ----------------------------------------------------------------------------------- hashing
def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------- trainer
class OFDDTrainer:
    """Trains the students of one run (see the module docstring for the loss and families)."""

    def __init__(self, student: TorchStudent, *, seed: int = 0, console: "Console | None" = None):
        self.student = student
        self.c = student.config
        self.seed = int(seed)
        self.console = console

    # .................................................................................. public
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        teacher: TeacherData | None,
        *,
        regimes: np.ndarray | None = None,
        probe: ProbeResult | None = None,
        specs: Sequence[StudentSpec] | None = None,
        tasks: Sequence[str] = TASKS,
    ) -> StudentSet:
        """Train every student.

        :param X: ``[N, W, F]`` raw inputs; :param Y: ``[N, T]`` targets (NaN = invalid).
        :param train_idx, val_idx: rows of the training / validation splits.
        :param teacher: teacher features / predictions on a subset of rows (None: λ_f, λ_s unused).
        :param regimes: ``[N]`` regime per row (-1 none), needed by the data family.
        """
        import torch

        c = self.c
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        N, W, F = X.shape
        T = Y.shape[1]
        train_idx, val_idx = np.asarray(train_idx, dtype=np.int64), np.asarray(val_idx, dtype=np.int64)
        layers = teacher.layers if teacher is not None else []
        if specs is None:
            specs = plan_students(c.families, layers, probe, n_bands=c.layer_bands, n_tasks=T, n_regimes=len(probe.regimes) if probe else 2, fitnets_layer=c.fitnets_layer, task_names=tasks)
        # standardisation on the training split
        xt = X[train_idx].reshape(-1, F).astype(np.float64)
        x_mean = np.nanmean(xt, 0).astype(np.float32)
        x_std = np.nanstd(xt, 0).astype(np.float32)
        x_std[~(x_std > 1e-8)] = 1.0
        x_mean = np.nan_to_num(x_mean)
        Yt = Y[train_idx]
        y_mean = np.array([np.nanmean(Yt[:, t]) if np.isfinite(Yt[:, t]).any() else 0.0 for t in range(T)])
        y_std = np.array([np.nanstd(Yt[:, t]) if np.isfinite(Yt[:, t]).any() else 1.0 for t in range(T)])
        y_std[~(y_std > 1e-12)] = 1.0
        Xs = np.nan_to_num((X - x_mean) / x_std, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        Ys = (Y - y_mean) / y_std
        y_mask = np.isfinite(Ys)
        Ys = np.where(y_mask, Ys, 0.0).astype(np.float32)

        # teacher arrays on all N rows (masked)
        has_teacher = np.zeros(N, dtype=bool)
        Ts = np.zeros((N, T), np.float32)
        t_mask = np.zeros((N, T), dtype=bool)
        sel_train = np.zeros(0, dtype=np.int64)
        common = None
        if teacher is not None and len(teacher.sel_idx):
            sel = np.asarray(teacher.sel_idx, dtype=np.int64)
            has_teacher[sel] = True
            if teacher.preds is not None:
                P = (np.asarray(teacher.preds, dtype=np.float64) - y_mean) / y_std
                t_mask[sel] = np.isfinite(P)
                Ts[sel] = np.where(np.isfinite(P), P, 0.0)
            in_train = np.zeros(N, dtype=bool)
            in_train[train_idx] = True
            sel_train = np.flatnonzero(in_train[sel])  # positions into sel
            if len(sel_train) < 3:
                raise ConfigError(f"only {len(sel_train)} teacher samples fall in the training split; lower the teacher stride", key="teacher.params")
            common = BandPCA.fit(teacher.features, layers, sel_train, c.common_dim)
            common_coords = common.transform(teacher.features)
        common_dim = common.dim if common is not None else c.common_dim

        specs = list(specs)
        trained: list[TrainedStudent] = []
        prev_threads = torch.get_num_threads()
        prev_det = torch.are_deterministic_algorithms_enabled()
        if c.threads:
            torch.set_num_threads(c.threads)
        torch.use_deterministic_algorithms(True)
        try:
            progress = self._progress()
            with progress:
                for k, spec in enumerate(specs):
                    tr, va = self._rows(spec, train_idx, val_idx, y_mask, regimes)
                    feat = np.zeros((N, 1), np.float32)
                    f_mask = np.zeros(N, dtype=bool)
                    cmap, cbias = np.zeros((1, common_dim)), np.zeros(common_dim)
                    if spec.band and teacher is not None:
                        pca = BandPCA.fit(teacher.features, spec.band, sel_train, c.pca_dim)
                        coords = pca.transform(teacher.features)
                        feat = np.zeros((N, pca.dim), np.float32)
                        feat[teacher.sel_idx] = coords
                        f_mask = has_teacher.copy()
                        cmap, cbias = _ridge_map(coords[sel_train], common_coords[sel_train])
                    proj_dim = feat.shape[1]
                    st = self._train(k, spec, Xs, Ys, y_mask, Ts, t_mask, feat, f_mask, tr, va, trained, progress)
                    st.common_map, st.common_bias = cmap, cbias
                    st.meta["proj_dim"] = int(proj_dim)
                    trained.append(st)
        finally:
            torch.set_num_threads(prev_threads)
            torch.use_deterministic_algorithms(prev_det)
        return StudentSet(trained, x_mean, x_std, y_mean, y_std, list(tasks)[:T], common_dim, W)

    # ................................................................................ helpers
    def _rows(self, spec: StudentSpec, train_idx: np.ndarray, val_idx: np.ndarray, y_mask: np.ndarray, regimes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        cols = list(spec.tasks)
        tr = train_idx[y_mask[train_idx][:, cols].any(1)]
        va = val_idx[y_mask[val_idx][:, cols].any(1)]
        if spec.regime is not None:
            if regimes is None:
                raise ConfigError("the data family needs regimes", key="students.params.families")
            reg = np.asarray(regimes)
            tr, va = tr[reg[tr] == spec.regime], va[reg[va] == spec.regime]
        if len(tr) < self.c.min_samples:
            raise ConfigError(f"student {spec.key} has only {len(tr)} training samples (min_samples {self.c.min_samples})", key="students.params.min_samples")
        if len(va) == 0:
            raise ConfigError(f"student {spec.key} has no validation samples for early stopping", key="split")
        return tr, va

    def _progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            console=self.console, transient=False, disable=self.console is None,
        )

    def _train(self, k, spec, Xs, Ys, y_mask, Ts, t_mask, feat, f_mask, tr, va, previous, progress) -> TrainedStudent:
        import torch

        c = self.c
        seed = int(_digest(self.seed, spec.key)[:8], 16)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        W, F = Xs.shape[1:]
        net = self.student.build(W, F, len(spec.tasks), feat.shape[1])
        n_params = int(sum(p.numel() for p in net.parameters()))
        opt = torch.optim.Adam(net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        cols = list(spec.tasks)
        lam_f = c.lambda_f if spec.band and spec.family != "kd-output" else 0.0
        prev_nets = [p.net for p in previous] if c.lambda_d > 0 else []
        for p in prev_nets:
            p.eval()

        def tensors(rows: np.ndarray):
            return (
                torch.from_numpy(Xs[rows]), torch.from_numpy(Ys[rows][:, cols]), torch.from_numpy(y_mask[rows][:, cols].astype(np.float32)),
                torch.from_numpy(Ts[rows][:, cols]), torch.from_numpy(t_mask[rows][:, cols].astype(np.float32)),
                torch.from_numpy(feat[rows]), torch.from_numpy(f_mask[rows].astype(np.float32)),
            )

        def loss_of(b, train: bool):
            x, y, ym, ts, tm, f, fm = b
            z, yh, pz = net(x)
            loss = c.lambda_y * (((yh - y) ** 2) * ym).sum() / ym.sum().clamp(min=1.0)
            if c.lambda_s > 0:
                loss = loss + c.lambda_s * (((yh - ts) ** 2) * tm).sum() / tm.sum().clamp(min=1.0)
            if lam_f > 0:
                loss = loss + lam_f * (((pz - f) ** 2).mean(1) * fm).sum() / fm.sum().clamp(min=1.0)
            if prev_nets and train and len(x) > 2:
                zs = (z - z.mean(0)) / (z.std(0) + 1e-5)
                dec = 0.0
                for pn in prev_nets:
                    with torch.no_grad():
                        zp = pn(x)[0]
                        zp = (zp - zp.mean(0)) / (zp.std(0) + 1e-5)
                    dec = dec + ((zs.T @ zp) / len(x)).pow(2).mean()
                loss = loss + c.lambda_d * dec / len(prev_nets)
            return loss

        val_b = tensors(va)
        best, best_state, best_epoch, bad = float("inf"), None, -1, 0
        task = progress.add_task(spec.key, total=c.max_epochs, info="")
        tr_t = torch.from_numpy(tr)
        epoch = 0
        for epoch in range(c.max_epochs):
            net.train()
            perm = tr_t[torch.randperm(len(tr), generator=gen)].numpy()
            for i in range(0, len(perm), c.batch_size):
                rows = perm[i : i + c.batch_size]
                opt.zero_grad()
                loss = loss_of(tensors(rows), True)
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                v = float(loss_of(val_b, False))
            if v < best - 1e-6:
                best, best_epoch, bad = v, epoch, 0
                best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
            else:
                bad += 1
            progress.update(task, advance=1, info=f"val {v:.4f} (best {best:.4f} @ {best_epoch + 1})")
            if bad >= c.patience:
                break
        progress.update(task, total=epoch + 1, completed=epoch + 1)
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        meta = {"val_loss": best, "best_epoch": best_epoch + 1, "epochs": epoch + 1, "n_train": int(len(tr)), "n_val": int(len(va))}
        return TrainedStudent(spec, net, n_params, np.zeros((1, 1)), np.zeros(1), meta)
