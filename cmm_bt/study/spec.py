"""The study file: datasets × strategies × seeds under one protocol, every strategy tuned alike.

```yaml
datasets: [cme-gc, cffex-if]
strategies:
  fixed-spread: {file: ../strategies/fixed-spread.yaml, tune: {execution.params.half_spread_ticks: "1,2,3"}}
  glft: {file: ../strategies/glft.yaml, tune: {execution.params.risk_aversion: "log(0.05,5)"}}
  cmm: {file: ../strategies/cmm.yaml, protocol: {decision_interval_ms: 1000}, why: "the teacher's window is 1 s steps"}
seeds: [0, 1, 2]
protocol: {decision_interval_ms: 100, order_qty: 1, position_limit: 10, maker_fee: 0, taker_fee: 0}
overrides: [teacher.params.max_samples=2000]   # to every strategy that has a `teacher:` section
tuning: {trials: 8, search: tpe, split: validation, metric: pnl_map}
reference: cmm
```

Paths are relative to the study file. ``protocol`` holds engine settings applied to every strategy
(after its own file, so the file cannot silently differ); a strategy that must differ lists its
own ``protocol`` keys with a ``why``, and the report shows it. ``overrides`` are ``-o`` overrides of
plugin-owned sections shared by the study: each goes to every strategy whose configuration has the
key's top-level section (``teacher.*`` only to the strategies with a teacher), before the
strategy's own ``overrides``; a key that no strategy's configuration has is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cmm_bt.config.errors import render_validation_error
from cmm_bt.config.yamlio import read_yaml_mapping
from cmm_bt.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyStrategy(_Strict):
    """One strategy of the study."""

    file: str = Field(description="Strategy file, relative to the study file.")
    tune: dict[str, str] = Field(default_factory=dict, description="Free parameters: -o key -> value spec of `cmm-bt sweep --param`.")
    protocol: dict[str, Any] = Field(default_factory=dict, description="Engine settings where this strategy must differ from the protocol.")
    why: str | None = Field(None, description="Why it differs (shown in the report); required with `protocol`.")
    overrides: list[str] = Field(default_factory=list, description="More -o overrides of this strategy (not tuned).")

    @model_validator(mode="after")
    def _why(self) -> "StudyStrategy":
        if self.protocol and not self.why:
            raise ValueError("a strategy that differs from the protocol says why (`why:`)")
        return self


class Tuning(_Strict):
    """The same tuning budget for every strategy."""

    trials: int = Field(8, ge=1, description="Trials per strategy and dataset (grid: at most this many points are allowed).")
    search: Literal["grid", "random", "tpe"] = Field("tpe", description="Search of `cmm-bt sweep`.")
    split: Literal["train", "validation", "test", "all"] = Field("validation", description="Split the trials replay (never the test split).")
    metric: str = Field("pnl_map", description="Run metric the trials are ranked by.")
    seed: int = Field(0, description="Seed of the search and of the tuning runs.")

    @model_validator(mode="after")
    def _not_test(self) -> "Tuning":
        if self.split in ("test", "all"):
            raise ValueError("tuning on the test split would leak it: use validation (or train)")
        return self


class StudyFile(_Strict):
    """A study file (see the module doc)."""

    description: str | None = None
    datasets: list[str] = Field(min_length=1)
    strategies: dict[str, StudyStrategy] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    protocol: dict[str, Any] = Field(default_factory=dict, description="Engine settings applied to every strategy.")
    overrides: list[str] = Field(default_factory=list, description="-o overrides for every strategy that has the key's top-level section.")
    tuning: Tuning = Field(default_factory=Tuning)
    reference: str
    split: Literal["test"] = Field("test", description="The split results are reported on, each configuration run once per seed.")

    @model_validator(mode="after")
    def _reference(self) -> "StudyFile":
        if self.reference not in self.strategies:
            raise ValueError(f"reference {self.reference!r} is not one of the strategies ({', '.join(self.strategies)})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds listed twice")
        for item in self.overrides:
            key, sep, _ = item.partition("=")
            if not sep or not key.strip() or _section(item) in ("engine", "seed", "split", "dataset"):
                raise ValueError(f"overrides: {item!r} is not a section override key.path=value (engine settings go in `protocol`)")
        return self


def load_study(path: Path) -> tuple[StudyFile, Path]:
    """The validated study file and its folder; a bad file is a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        study = StudyFile(**read_yaml_mapping(path))
    except ValidationError as err:
        raise ConfigError(render_validation_error(err), file=path) from None
    base = path.resolve().parent
    for name, s in study.strategies.items():
        if not (base / s.file).is_file():
            raise ConfigError(f"strategy file not found: {s.file}", file=path, key=f"strategies.{name}.file")
    sections = {name: strategy_sections(base / s.file) for name, s in study.strategies.items()}
    for i, item in enumerate(study.overrides):
        if not any(_section(item) in have for have in sections.values()):
            raise ConfigError(f"no strategy has a `{_section(item)}:` section for {item!r}", file=path, key=f"overrides.{i}")
    return study, base


def _section(item: str) -> str:
    return item.partition("=")[0].strip().split(".")[0]


def strategy_sections(file: Path) -> set[str]:
    """Top-level keys of the composed strategy ``file`` that are set (not null)."""
    from cmm_bt.config.loader import compose

    return {k for k, v in compose(Path(file)).items() if v is not None}


def shared_overrides(study: StudyFile, base: Path, name: str) -> list[str]:
    """The study's ``overrides`` that apply to strategy ``name`` (those of its sections)."""
    have = strategy_sections(base / study.strategies[name].file)
    return [o for o in study.overrides if _section(o) in have]


def engine_overrides(settings: dict[str, Any]) -> list[str]:
    """``engine.KEY=VALUE`` overrides of a protocol mapping."""
    import json

    return [f"engine.{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]
