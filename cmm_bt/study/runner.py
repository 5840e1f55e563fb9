"""``cmm-bt study``: tune every strategy alike on validation, run it once per seed on test, compare.

Steps (each resumable: a rerun reuses complete sweeps and run folders):

1. for every dataset × strategy with free parameters, a sweep (:func:`cmm_bt.sweep.run_sweep`) on
   the tuning split with the study's budget, the protocol applied to every trial; its
   ``best.yaml`` is the configuration that goes to the test split (a strategy without free
   parameters goes as it is);
2. every dataset × strategy × seed on the test split (``-o seed=S``), on the executor, into
   ``DIR/runs/<dataset>/<strategy>/seed-<S>/``;
3. :mod:`cmm_bt.study.analysis` over those run folders: ``study.json``, ``paired.json``,
   ``study.md`` and ``report.html``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmm_bt.study.spec import StudyFile, engine_overrides, load_study, shared_overrides

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.api import Session
    from cmm_bt.results import RunResult


@dataclass
class StudyRun:
    """One dataset × strategy × seed on the test split."""

    dataset: str
    strategy: str
    seed: int
    result: "RunResult"


@dataclass
class StudyResult:
    out: Path
    study: StudyFile
    runs: list[StudyRun]
    tuned: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    notes: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    """Plugins' facts per dataset × strategy × seed run (``cmm_bt_study_notes``, e.g. what a probe found)."""


def strategy_overrides(study: StudyFile, name: str, base: Path) -> list[str]:
    """The study's overrides of the strategy's sections, its own overrides, then the protocol (its
    declared exceptions winning)."""
    s = study.strategies[name]
    return [*shared_overrides(study, base, name), *s.overrides, *engine_overrides({**study.protocol, **s.protocol})]


def run_study(session: "Session", path: Path, out: Path, *, executor: str = "local", workers: int | None = None,
              ray_address: str | None = None, data_root: Path | None = None, console: "Console | None" = None) -> StudyResult:
    """Run (or resume) the study in ``path`` into ``out``."""
    from cmm_bt.executors import make_executor
    from cmm_bt.executors.jobs import RunJob, run_jobs
    from cmm_bt.results import read_run_result
    from cmm_bt.study.analysis import write_outputs
    from cmm_bt.sweep import SweepSpec, run_sweep

    console = console or session.console
    study, base = load_study(path)
    out = Path(out).resolve()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    chosen: dict[tuple[str, str], Path] = {}
    tuned: dict[tuple[str, str], dict[str, Any]] = {}
    for ds in study.datasets:
        for name, s in study.strategies.items():
            file = (base / s.file).resolve()
            if not s.tune:
                chosen[ds, name] = file
                continue
            console.rule(f"tuning {name} on {ds} ({study.tuning.trials} trials, {study.tuning.search}, {study.tuning.split})")
            t = study.tuning
            res = run_sweep(session, SweepSpec(
                strategy=file, out=out / "tuning" / ds / name, params=[f"{k}={v}" for k, v in s.tune.items()], dataset=ds,
                split=t.split, search=t.search, trials=None if t.search == "grid" else t.trials, seed=t.seed, metric=t.metric,
                executor=executor, workers=workers, ray_address=ray_address,
                overrides=[*strategy_overrides(study, name, base), f"seed={t.seed}"],
                data_root=data_root), console)
            if res.best_yaml is None:
                raise RuntimeError(f"no tuning trial of {name} on {ds} succeeded (see {res.out})")
            chosen[ds, name] = res.best_yaml
            tuned[ds, name] = {"params": dict(res.best.params), "value": res.best.value, "trials": len(res.records)}
    timing["tuning_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    jobs, done = {}, {}
    for ds in study.datasets:
        for name in study.strategies:
            for seed in study.seeds:
                key = f"{ds}/{name}/seed-{seed}"
                target = out / "runs" / ds / name / f"seed-{seed}"
                if (target / "complete").is_file():
                    done[key] = read_run_result(target)
                    continue
                jobs[key] = RunJob(strategy=str(chosen[ds, name]), out_dir=str(target), dataset=ds, replace=target.exists(),
                                   overrides=(*strategy_overrides(study, name, base), f"seed={seed}", f"split={study.split}"),
                                   data_root=str(data_root) if data_root else None)
    if jobs:
        console.rule(f"{len(jobs)} test runs ({len(done)} reused)")
        pool = make_executor(executor, workers=workers, ray_address=ray_address)
        try:
            done.update(run_jobs(pool, jobs, on_done=lambda k, o: console.print(f"{'done' if o.ok else 'FAILED'} {k}")))
        finally:
            pool.close()
    timing["test_s"] = time.perf_counter() - t1
    runs = []
    for key, result in sorted(done.items()):
        ds, name, seed = key.split("/")
        runs.append(StudyRun(ds, name, int(seed.removeprefix("seed-")), result))
    notes = {(r.dataset, r.strategy, r.seed): n for r in runs if (n := session.hooks.study_notes(result=r.result))}
    result = StudyResult(out, study, runs, tuned, timing, notes)
    write_outputs(result, console)
    timing["total_s"] = time.perf_counter() - t0
    return result
