"""Run a sweep: validate every trial, run the missing ones on an executor, write the results.

The flow of :func:`run_sweep`:

1. parse the ``--param`` specs and build the search (grid / random points, or Optuna TPE);
2. validate every trial's config (tpe: every value and both ends of every range) and load each
   dataset once here, so a bad key, value or data file stops the sweep before any trial runs;
3. read ``DIR/sweep.json`` of an earlier run: trials it lists as ok whose run folder is complete are
   reused, not run again;
4. run the rest on the executor, at most ``executor.slots`` at once, each trial a normal run folder
   ``DIR/trials/<name>`` (written atomically by the worker); ``sweep.json`` is rewritten after each;
5. write ``sweep.md``, ``sweep.parquet`` and ``best.yaml`` (also when interrupted), and with
   ``then_test`` run ``best.yaml`` on the test split.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from cmm_bt.errors import CmmBtError, ConfigError
from cmm_bt.executors.jobs import plugin_settings
from cmm_bt.sweep.records import (
    BEST_YAML,
    SWEEP_JSON,
    SWEEP_MD,
    SWEEP_PARQUET,
    TRIALS,
    FORMAT_VERSION,
    TrialRecord,
    best_record,
    best_yaml_text,
    is_complete,
    load_sweep,
    markdown_table,
    metric_value,
    ranked,
    read_metrics,
    short_names,
    trial_key,
    trial_name,
    write_json,
    write_parquet,
    write_text,
)
from cmm_bt.sweep.search import make_search
from cmm_bt.sweep.space import canonical, corner_points, override_for, parse_params

if TYPE_CHECKING:
    from rich.console import Console

    from cmm_bt.api import Session

#: Metrics shown side by side by ``--then-test`` (after the sweep's own metric).
GAP_METRICS = ("pnl_map", "epnl", "total_pnl", "map", "sharpe", "sortino", "max_drawdown", "fills", "order_fill_ratio")
TEST_DIR = "test"


@dataclass
class SweepSpec:
    """Everything ``cmm-bt sweep`` was asked to do (see the CLI's help for each field)."""

    strategy: Path
    out: Path
    params: list[str]
    dataset: str | None = None
    split: str = "validation"
    search: str = "grid"
    trials: int | None = None
    seed: int = 0
    metric: str = "pnl_map"
    direction: str | None = None
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    retries: int = 2
    max_trials_per_worker: int = 50
    overrides: list[str] = field(default_factory=list)
    data_root: Path | None = None
    cache_dir: Path | None = None
    plugins_dir: Path | None = None
    disabled: tuple[str, ...] = ()
    then_test: bool = False
    #: keep the strategy's reporters' files (plots, report.html) in every trial folder; by default a
    #: trial runs with ``reporters=[]`` (they cost more than the replay itself; best.yaml keeps them)
    trial_reports: bool = False


@dataclass
class SweepResult:
    out: Path
    records: list[TrialRecord]
    metric: str
    direction: str
    best: TrialRecord | None
    best_yaml: Path | None
    test: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    #: ``validate_s``, ``executor_start_s``, ``trials_s`` (first submit to last result), ``total_s``
    timing: dict[str, float] = field(default_factory=dict)


def resolve_direction(metric: str, direction: str | None) -> str:
    """``max`` / ``min``: as given, else from the metric (``lower`` is better -> ``min``), else ``max``."""
    if direction is not None:
        d = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}.get(direction.lower())
        if d is None:
            raise CmmBtError(f"must be max or min (got {direction!r})", key="--direction")
        return d
    from cmm_bt.formatting import KEY_METRICS

    row = next((r for r in KEY_METRICS if r.key == metric), None)
    return "min" if row is not None and row.better == "lower" else "max"


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """One sweep at a time per output folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out / ".sweep.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CmmBtError("another sweep is running in this folder", file=out) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clean_stale(trials: Path) -> None:
    """Temporary folders left by workers that were killed while writing (the lock says none runs)."""
    if not trials.is_dir():
        return
    for p in trials.iterdir():
        if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


class _Sweep:
    """The state of one invocation (kept out of :func:`run_sweep` so the steps read one by one)."""

    def __init__(self, session: "Session", spec: SweepSpec, console: "Console"):
        from cmm_bt.data.loading import default_cache_dir
        from cmm_bt.data.manifest import resolve_data_root

        self.session, self.spec, self.console = session, spec, console
        self.strategy = Path(spec.strategy).resolve()
        if not self.strategy.is_file():
            raise ConfigError("file not found", file=spec.strategy)
        self.params = parse_params(list(spec.params))
        if not self.params:
            raise CmmBtError("give at least one --param KEY=V1,V2,... (or KEY=log(LO,HI))", key="--param")
        self.keys = [p.key for p in self.params]
        self.short = short_names(self.keys)
        self.metric = spec.metric
        self.direction = resolve_direction(spec.metric, spec.direction)
        self.search = make_search(spec.search, self.params, trials=spec.trials, seed=spec.seed, direction=self.direction)
        self.out = Path(spec.out).resolve()
        self.trials_dir = self.out / TRIALS
        self.base_overrides = [*spec.overrides, f"split={spec.split}"]
        self.trial_only = [] if spec.trial_reports else ["reporters=[]"]  # appended to every trial, not to best.yaml
        self.data_root = resolve_data_root(spec.data_root)
        self.cache_dir = Path(spec.cache_dir).resolve() if spec.cache_dir else default_cache_dir()
        self.plugins_dir, self.disabled = plugin_settings(spec.plugins_dir, tuple(spec.disabled))
        self.records: dict[str, TrialRecord] = {}
        self.executor = None
        self.executor_desc = ""
        self.test: dict[str, Any] | None = None
        self.started = datetime.now(timezone.utc)
        #: validate_s (configs and data), executor_start_s, trials_s (first submit to last result), total_s
        self.timing: dict[str, float] = {}

    # ------------------------------------------------------------------------ helpers
    def describe(self, point: dict[str, Any]) -> str:
        return " ".join(f"{self.short[k]}={v if isinstance(v, str) else canonical(v)}" for k, v in point.items())

    def point_overrides(self, point: dict[str, Any]) -> list[str]:
        return [override_for(k, v) for k, v in point.items()]

    def signature(self) -> str:
        from cmm_bt.config.loader import compose

        doc = {
            "strategy_file": str(self.strategy),
            "strategy": compose(self.strategy),
            "dataset": self.spec.dataset,
            "overrides": self.base_overrides,
        }
        return hashlib.sha256(canonical(doc).encode()).hexdigest()[:16]

    def record_for(self, point: dict[str, Any]) -> TrialRecord:
        key = trial_key(point)
        if key not in self.records:
            overrides = [*self.base_overrides, *self.point_overrides(point), *self.trial_only]
            self.records[key] = TrialRecord(trial_name(point), key, dict(point), overrides)
        return self.records[key]

    def best(self) -> TrialRecord | None:
        return best_record(list(self.records.values()), self.direction)

    # ------------------------------------------------------------------------ steps
    def validate(self) -> None:
        """Every trial's config (tpe: every value and range end), then each dataset loaded once."""
        from cmm_bt.api import prepare_run
        from cmm_bt.sweep.validate import validate_trials

        points = self.search.known_points() or corner_points(self.params)
        datasets = validate_trials(
            self.session,
            Path(self.spec.strategy),  # as given: error messages name the file the user typed
            points,
            base_overrides=self.base_overrides,
            dataset=self.spec.dataset,
            swept_keys=self.keys,
            describe=self.describe,
            to_overrides=self.point_overrides,
        )
        for overrides in datasets.values():  # data errors now, and the data cache warm for the workers
            prepare_run(self.session, self.strategy, overrides=overrides, dataset=self.spec.dataset, data_root=self.data_root, cache_dir=self.cache_dir)

    def load_previous(self, signature: str) -> dict[str, TrialRecord]:
        """Trials of an earlier run of this sweep that are complete (ok in sweep.json, run folder complete)."""
        prev = load_sweep(self.out)
        if prev is None:
            return {}
        if prev.get("signature") != signature:
            raise CmmBtError(
                "holds a sweep of another configuration (strategy file or its content, --dataset, --split or -o differ); "
                "use another --out or remove the folder",
                file=self.out / SWEEP_JSON,
            )
        done = {}
        for data in prev.get("trials", []):
            rec = TrialRecord.from_json(data)
            run_dir = self.trials_dir / rec.name
            if rec.status == "ok" and is_complete(run_dir):
                rec.run_dir = str(run_dir)
                rec.metrics = read_metrics(run_dir)
                done[rec.key] = rec
        self.previous_test = self.test = prev.get("test")
        return done

    def adopt(self, previous: dict[str, TrialRecord]) -> list[TrialRecord]:
        """Mark the trials found complete as reused (grid / random: those among the points; tpe: those
        in the space, told to Optuna)."""
        reused = []
        known = self.search.known_points()
        for point in known or []:  # listed in trial order
            self.record_for(point)
        candidates = known if known is not None else [p.params for p in previous.values()]
        for point in candidates:
            key = trial_key(point)
            if key not in previous:
                continue
            old = previous[key]
            if known is None and not self.search.add_done(point, metric_value(old.metrics, self.metric)):
                continue
            rec = self.record_for(point)
            rec.status, rec.metrics, rec.run_dir, rec.reused = "ok", old.metrics, old.run_dir, True
            rec.attempts, rec.worker, rec.wall_s, rec.error = old.attempts, old.worker, old.wall_s, None
            rec.value = metric_value(rec.metrics, self.metric)
            reused.append(rec)
        return reused

    def check_metric(self, rec: TrialRecord) -> None:
        if rec.status == "ok" and self.metric not in rec.metrics:
            close = difflib.get_close_matches(self.metric, sorted(rec.metrics), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CmmBtError(f"unknown metric {self.metric!r}{hint} (see docs/metrics.md)", key="--metric")

    def sweep_doc(self) -> dict[str, Any]:
        recs = list(self.records.values())
        best = self.best()
        counts = {s: sum(1 for r in recs if r.status == s) for s in ("ok", "failed", "running", "pending")}
        counts["reused"] = sum(1 for r in recs if r.reused)
        counts["total"] = len(recs)
        spec = self.spec
        return {
            "version": FORMAT_VERSION,
            "signature": self._signature,
            "strategy": str(self.strategy),
            "dataset": spec.dataset,
            "split": spec.split,
            "overrides": list(spec.overrides),
            "search": spec.search,
            "trials_requested": spec.trials,
            "seed": spec.seed,
            "metric": self.metric,
            "direction": self.direction,
            "executor": spec.executor,
            "executor_detail": self.executor_desc or None,
            "space": {p.key: p.to_json() for p in self.params},
            "counts": counts,
            "best": None if best is None else {"trial": best.name, "key": best.key, "params": best.params, "value": best.value, "run_dir": best.run_dir},
            "timing_s": {k: round(v, 3) for k, v in self.timing.items()},
            "started": self.started.isoformat(timespec="seconds"),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "trials": [r.to_json() for r in recs],
            "test": self.test if self.test and best is not None and self.test.get("key") == best.key else None,
        }

    def write_listing(self) -> None:
        write_json(self.out / SWEEP_JSON, self.sweep_doc())

    def write_outputs(self) -> Path | None:
        recs = list(self.records.values())
        self.write_listing()
        spec = self.spec
        head = (
            f"# Sweep: {self.strategy.stem} on {spec.dataset or 'its dataset'} ({spec.split} split)\n\n"
            f"{spec.search} search over {', '.join(f'`{p.key}` = {p.describe()}' for p in self.params)}; "
            f"metric **{self.metric}** ({self.direction}); {sum(r.status == 'ok' for r in recs)} ok, "
            f"{sum(r.status == 'failed' for r in recs)} failed, {sum(r.reused for r in recs)} reused of {len(recs)} trials"
            + (f"; {self.executor_desc}" if self.executor_desc else "")
            + ".\n\n"
        )
        write_text(self.out / SWEEP_MD, head + markdown_table(recs, self.keys, self.metric, self.direction))
        write_parquet(self.out / SWEEP_PARQUET, recs, self.keys, self.metric, self.direction)
        best = self.best()
        path = self.out / BEST_YAML
        if best is None:
            path.unlink(missing_ok=True)
            return None
        header = [
            f"Best trial of `cmm-bt sweep` in {self.out}: {best.name}",
            f"{self.metric} = {best.value:.6g} ({self.direction}) on the {spec.split} split; params: {self.describe(best.params)}",
            "The split is the original strategy's (cmm-bt sweep --then-test runs this file with split=test).",
        ]
        write_text(path, best_yaml_text(self.out, self.strategy, dataset=spec.dataset, base_overrides=list(spec.overrides),
                                        best=best, overrides=self.point_overrides(best.params), header=header))
        return path

    # ------------------------------------------------------------------------ running
    def submit(self, rec: TrialRecord, ticket: Any) -> None:
        from cmm_bt.executors.jobs import RunJob, run_job

        starts = self.trials_dir / f".{rec.name}.starts"
        starts.unlink(missing_ok=True)
        (self.trials_dir / f"{rec.name}.error.txt").unlink(missing_ok=True)
        job = RunJob(
            strategy=str(self.strategy),
            out_dir=str(self.trials_dir / rec.name),
            overrides=tuple(rec.overrides),
            dataset=self.spec.dataset,
            data_root=str(self.data_root),
            cache_dir=str(self.cache_dir),
            plugins_dir=self.plugins_dir,
            disabled=self.disabled,
            replace=True,
            starts_file=str(starts),
        )
        rec.status, rec.error, rec.reused = "running", None, False
        self.executor.submit(rec.name, run_job, job)  # the name in the executor's notices
        self.in_flight[rec.name] = (rec, ticket)

    def finish(self, outcome) -> TrialRecord:
        from cmm_bt.executors.jobs import count_starts

        rec, ticket = self.in_flight.pop(outcome.task_id)
        starts = count_starts(self.trials_dir / f".{rec.name}.starts")
        rec.attempts = max(starts, outcome.attempts or 0) or None
        rec.worker = outcome.worker or None
        if outcome.ok:
            rec.status, rec.error = "ok", None
            rec.metrics = dict(outcome.value["metrics"])
            rec.run_dir = outcome.value["run_dir"]
            rec.wall_s = outcome.value.get("wall_s", outcome.wall_s)
            rec.value = metric_value(rec.metrics, self.metric)
        else:
            rec.status, rec.error, rec.metrics, rec.run_dir, rec.value = "failed", outcome.error.one_line(), {}, None, None
            rec.wall_s = outcome.wall_s or None
            if outcome.error.traceback:
                write_text(self.trials_dir / f"{rec.name}.error.txt", outcome.error.traceback)
        self.search.tell(ticket, rec.value)
        for dup in self.dupes.pop(rec.key, []):
            self.search.tell(dup, rec.value)
        return rec

    def fill(self) -> None:
        while len(self.in_flight) < self.executor.slots:
            asked = self.search.ask()
            if asked is None:
                return
            ticket, point = asked
            rec = self.record_for(point)
            if rec.name in self.in_flight:  # tpe asked again for a point that is running
                self.dupes.setdefault(rec.key, []).append(ticket)
            elif rec.status in ("ok", "failed") and (rec.reused or rec.key in self.finished):
                self.search.tell(ticket, rec.value)  # already known (reused, or a tpe repeat)
            else:
                self.submit(rec, ticket)

    def run(self, previous: dict[str, TrialRecord]) -> None:
        from cmm_bt.executors import make_executor
        from cmm_bt.sweep.progress import SweepProgress

        reused = self.adopt(previous)
        for rec in reused:
            self.check_metric(rec)
        self.in_flight: dict[str, tuple[TrialRecord, Any]] = {}
        self.dupes: dict[str, list[Any]] = {}
        self.finished: set[str] = set()
        total = self.search.budget
        missing = total - len(reused)
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale(self.trials_dir)
        if reused:
            self.console.print(f"[dim]{len(reused)} of {total} trials found complete in {self.out} (reused)[/]")
        if missing > 0:
            spec = self.spec
            t0 = time.perf_counter()
            self.executor = make_executor(
                spec.executor, workers=spec.workers, ray_address=spec.ray_address, max_retries=spec.retries,
                max_tasks_per_worker=spec.max_trials_per_worker,
            )
            self.executor_desc = self.executor.describe()
            self.timing["executor_start_s"] = time.perf_counter() - t0
            self.console.print(f"[dim]running {missing} trial{'s' if missing != 1 else ''} on the {self.executor_desc}[/]")
        self.write_listing()
        with SweepProgress(self.console, total, self.metric, self.describe) as progress:
            for rec in reused:
                progress.trial_done(rec, self.best())
            if self.executor is None:
                return
            self.executor.on_notice(progress.notice)
            t0 = time.perf_counter()
            self.fill()
            progress.set_running(len(self.in_flight))
            while self.in_flight:
                for outcome in self.executor.wait(timeout=0.5):
                    rec = self.finish(outcome)
                    self.finished.add(rec.key)
                    self.write_listing()
                    progress.trial_done(rec, self.best())
                    self.check_metric(rec)
                self.fill()
                progress.set_running(len(self.in_flight))
            self.timing["trials_s"] = time.perf_counter() - t0

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.notices = list(self.executor.notices)
        else:
            self.notices = []
        for rec, _ in getattr(self, "in_flight", {}).values():  # interrupted: not run
            rec.status = "pending"

    # ------------------------------------------------------------------------ test split
    def then_test(self, best_yaml: Path) -> None:
        from cmm_bt.api import execute_run, prepare_run

        best = self.best()
        test_dir = self.out / TEST_DIR
        prev = getattr(self, "previous_test", None)
        if prev and prev.get("key") == best.key and is_complete(test_dir):
            metrics, reused = read_metrics(test_dir), True
        else:
            if test_dir.exists():
                shutil.rmtree(test_dir)
            self.console.print(f"[bold]running best.yaml on the test split[/] ({self.describe(best.params)})")
            run, market = prepare_run(self.session, best_yaml, overrides=["split=test"], data_root=self.data_root, cache_dir=self.cache_dir)
            metrics, reused = dict(execute_run(self.session, run, market, out_dir=test_dir).metrics), False
        self.test = {"key": best.key, "trial": best.name, "params": best.params, "run_dir": str(test_dir), "reused": reused,
                     "metrics": {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}}
        self.write_listing()
        self.console.print(gap_table(best, metrics, self.metric, self.spec.split))


def gap_table(best: TrialRecord, test_metrics: dict[str, Any], metric: str, split: str):
    """Validation (the best trial) and test side by side, with the gap."""
    from rich.table import Table

    from cmm_bt.formatting import fmt_value, is_missing

    table = Table(title=f"Best trial on {split} vs test", title_justify="left")
    for col, just in (("Metric", "left"), (split, "right"), ("test", "right"), ("test − " + split, "right")):
        table.add_column(col, justify=just)
    for key in dict.fromkeys((metric, *GAP_METRICS)):
        a, b = best.metrics.get(key), test_metrics.get(key)
        if a is None and b is None:
            continue
        gap = None if is_missing(a) or is_missing(b) else float(b) - float(a)
        table.add_row(key, fmt_value(a, "float"), fmt_value(b, "float"), fmt_value(gap, "float"))
    return table


def results_table(records: list[TrialRecord], keys: list[str], metric: str, direction: str, limit: int = 15):
    """The best ``limit`` trials as a rich table (sorted by the metric)."""
    from rich.table import Table

    from cmm_bt.formatting import fmt_value

    names = short_names(keys)
    cols = [metric, *(m for m in ("epnl", "map", "sharpe", "fills") if m != metric)]
    table = Table(title=f"Sweep results (by {metric}, {direction})", title_justify="left")
    table.add_column("#", justify="right")
    for k in keys:
        table.add_column(names[k], justify="right")
    for m in cols:
        table.add_column(m, justify="right", style="bold" if m == metric else "")
    table.add_column("status")
    rows = ranked(records, direction)
    for i, r in enumerate(rows[:limit], 1):
        status = r.status + (" (reused)" if r.reused else "") + (f" ×{r.attempts}" if (r.attempts or 0) > 1 else "")
        if r.status == "failed":
            status = f"[red]failed[/]: {(r.error or '')[:40]}"
        table.add_row(str(i), *(v if isinstance(v := r.params.get(k), str) else canonical(v) for k in keys),
                      *(fmt_value(r.metrics.get(m), "float") for m in cols), status)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more in sweep.md"
    return table


def run_sweep(session: "Session", spec: SweepSpec, console: "Console | None" = None) -> SweepResult:
    """Run (or resume) the sweep ``spec``; see the module docstring for the steps."""
    console = console or session.console
    t_start = time.perf_counter()
    sweep = _Sweep(session, spec, console)
    t0 = time.perf_counter()
    sweep.validate()  # before anything is written: a bad sweep leaves no folder behind
    sweep.timing["validate_s"] = time.perf_counter() - t0
    console.print(f"[dim]validated {len(sweep.search.known_points() or corner_points(sweep.params))} trial configs in {sweep.timing['validate_s']:.1f} s[/]")
    sweep.out.mkdir(parents=True, exist_ok=True)
    with _folder_lock(sweep.out):
        sweep._signature = sweep.signature()
        previous = sweep.load_previous(sweep._signature)
        best_yaml = None
        try:
            sweep.run(previous)
        finally:
            sweep.close()
            sweep.timing["total_s"] = time.perf_counter() - t_start
            best_yaml = sweep.write_outputs()
        records = list(sweep.records.values())
        console.print(results_table(records, sweep.keys, sweep.metric, sweep.direction))
        console.print(f"[dim]wrote {SWEEP_JSON}, {SWEEP_MD}, {SWEEP_PARQUET}{', ' + BEST_YAML if best_yaml else ''} to {sweep.out}[/]")
        if best_yaml is None:
            console.print("[red]no trial succeeded: no best.yaml[/]")
        elif spec.then_test:
            sweep.then_test(best_yaml)
        return SweepResult(sweep.out, records, sweep.metric, sweep.direction, sweep.best(), best_yaml, sweep.test, sweep.notices, dict(sweep.timing))
