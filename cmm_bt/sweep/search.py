"""Search strategies behind ``--search``: one ask / tell interface for grid, random and tpe.

``ask()`` hands out the next point (or None when the budget is spent); ``tell(ticket, value)`` gives
back its metric (None: the trial failed).  Grid and random know every point in advance; tpe asks
Optuna (seeded :class:`optuna.samplers.TPESampler`, ask-and-tell), so several trials can be in flight
on the executor at once (Optuna's constant liar keeps parallel asks apart).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from cmm_bt.errors import CmmBtError
from cmm_bt.sweep.space import Param, canonical, grid_points, random_points

SEARCHES = ("grid", "random", "tpe")
OPTUNA_HINT = "tpe search needs Optuna: pip install 'optuna>=3.6'"


class Search:
    """A fixed list of points (grid and random)."""

    def __init__(self, points: list[dict[str, Any]]):
        self.points = points
        self._next = 0

    @property
    def budget(self) -> int:
        return len(self.points)

    def known_points(self) -> list[dict[str, Any]] | None:
        """Every point, when known before the first trial runs."""
        return self.points

    def ask(self) -> tuple[Any, dict[str, Any]] | None:
        if self._next >= len(self.points):
            return None
        self._next += 1
        return self._next - 1, self.points[self._next - 1]

    def tell(self, ticket: Any, value: float | None) -> None:
        pass

    def add_done(self, point: dict[str, Any], value: float | None) -> bool:
        return False


class TpeSearch(Search):
    """Optuna TPE through ask-and-tell; ``budget`` trials in all, trials already done count."""

    def __init__(self, params: list[Param], budget: int, *, seed: int, direction: str):
        try:
            import optuna
        except ImportError:
            raise CmmBtError(OPTUNA_HINT, key="--search tpe") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.params = params
        self._budget = budget
        self.asked = 0
        self.distributions = {p.key: _distribution(optuna, p) for p in params}
        self.seed = seed
        self.done = 0  # trials found complete (add_done); they pick the sampler's stream in the first ask
        self.study = optuna.create_study(direction="maximize" if direction == "max" else "minimize", sampler=self._sampler(seed))

    def _sampler(self, seed: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning for constant_liar / multivariate on older Optuna
            return self._optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=max(1, min(10, self._budget // 3)), multivariate=True, constant_liar=True
            )

    @property
    def budget(self) -> int:
        return self._budget

    def known_points(self) -> None:
        return None

    def _encode(self, point: dict[str, Any]) -> dict[str, Any] | None:
        out = {}
        for p in self.params:
            if p.key not in point:
                return None
            v = point[p.key]
            if p.kind == "choice":
                c = canonical(v)
                if c not in self.distributions[p.key].choices:
                    return None
                out[p.key] = c
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not p.low <= v <= p.high:
                return None
            else:
                out[p.key] = int(v) if p.kind == "int" else float(v)
        return out

    def add_done(self, point: dict[str, Any], value: float | None) -> bool:
        """Tell Optuna about a trial found complete in the output folder (it counts against the budget)."""
        params = self._encode(point)
        if params is None or len(point) != len(self.params):
            return False
        state = self._optuna.trial.TrialState.COMPLETE if _finite(value) else self._optuna.trial.TrialState.FAIL
        trial = self._optuna.trial.create_trial(
            params=params, distributions=self.distributions, value=value if _finite(value) else None, state=state
        )
        self.study.add_trial(trial)
        self.asked += 1
        self.done += 1
        return True

    def ask(self) -> tuple[Any, dict[str, Any]] | None:
        if self.asked >= self._budget:
            return None
        if self.asked == self.done and self.done:
            # a resumed sweep: a sampler seeded as in the first run would replay its random draws (and
            # repeat its points); the stream depends on the seed and on how many trials are done
            self.study.sampler = self._sampler(self.seed + 1_000_003 * self.done)
        self.asked += 1
        trial = self.study.ask(self.distributions)
        point = {}
        for p in self.params:
            raw = trial.params[p.key]
            if p.kind == "choice":
                point[p.key] = p.choices[self.distributions[p.key].choices.index(raw)]
            elif p.kind == "int":
                point[p.key] = int(raw)
            else:
                point[p.key] = min(max(float(f"{raw:.6g}"), p.low), p.high)
        return trial, point

    def tell(self, ticket: Any, value: float | None) -> None:
        if _finite(value):
            self.study.tell(ticket, value)
        else:
            self.study.tell(ticket, state=self._optuna.trial.TrialState.FAIL)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _distribution(optuna, p: Param):
    d = optuna.distributions
    if p.kind == "choice":
        return d.CategoricalDistribution([canonical(v) for v in p.choices])
    if p.kind == "int":
        return d.IntDistribution(int(p.low), int(p.high))
    return d.FloatDistribution(p.low, p.high, log=p.kind == "log")


def make_search(kind: str, params: list[Param], *, trials: int | None, seed: int, direction: str) -> Search:
    """The search ``kind`` over ``params``; a contradictory option is a :class:`CmmBtError`."""
    if kind not in SEARCHES:
        raise CmmBtError(f"unknown search {kind!r} (known: {', '.join(SEARCHES)})", key="--search")
    if trials is not None and trials < 1:
        raise CmmBtError(f"must be at least 1 (got {trials})", key="--trials")
    if kind == "grid":
        points = grid_points(params)
        if trials is not None:
            raise CmmBtError(f"grid search runs every combination ({len(points)}); --trials is for --search random|tpe", key="--trials")
        return Search(points)
    if trials is None:
        raise CmmBtError(f"--search {kind} needs --trials N", key="--trials")
    if kind == "random":
        return Search(random_points(params, trials, seed))
    return TpeSearch(params, trials, seed=seed, direction=direction)
