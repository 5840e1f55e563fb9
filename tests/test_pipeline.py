"""The stage runner: wiring by product type, fallbacks, caching, planning, timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cmm_bt.errors import ConfigError
from cmm_bt.pipeline import Pipeline, Products, Signals, Stage, StageContext
from cmm_bt.stage_cache import StageCache


@dataclass
class Numbers:
    values: list[int]


@dataclass
class Total:
    value: int


@dataclass
class Label:
    text: str


@dataclass
class Calls:
    counts: dict[str, int] = field(default_factory=dict)

    def hit(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


class MakeNumbers(Stage):
    provides = Numbers

    def __init__(self, calls: Calls, n: int = 3):
        super().__init__("numbers", "test")
        self.calls, self.n = calls, n

    def identity(self, ctx):
        return {"n": self.n}

    def run(self, ctx):
        self.calls.hit(self.name)
        return Numbers(list(range(self.n)))


class SumNumbers(Stage):
    provides = Total
    requires = {"numbers": Numbers}
    optional = {"label": Label}
    cacheable = True

    def __init__(self, calls: Calls):
        super().__init__("total", "test")
        self.calls = calls

    def identity(self, ctx):
        return None

    def run(self, ctx, numbers, label=None):
        self.calls.hit(self.name)
        assert ctx.work_dir is not None and ctx.work_dir.is_dir()
        return Total(sum(numbers.values) + (100 if label else 0))

    def save(self, product, folder: Path):
        (folder / "total.txt").write_text(str(product.value))

    def load(self, folder: Path, ctx):
        return Total(int((folder / "total.txt").read_text()))


class Labeller(Stage):
    provides = Label

    def run(self, ctx):
        return Label("x")


class TotalSignals(Stage):
    provides = Signals
    requires = {"total": Total}
    fallback = True

    def run(self, ctx, total):
        return Signals(frame=None, metrics={"total": float(total.value)})


class OtherSignals(TotalSignals):
    fallback = False

    def run(self, ctx, total):
        return Signals(frame=None, metrics={"other": 1.0})


def _ctx(tmp_path, data_key="d") -> StageContext:
    return StageContext(run=None, market=None, grid=None, data_key=data_key, replay_key="r", cache=StageCache(tmp_path))


def test_wires_by_type_and_caches_the_cacheable_stage(tmp_path):
    calls = Calls()
    pipe = Pipeline([SumNumbers(calls), MakeNumbers(calls)])
    out = pipe.run(_ctx(tmp_path))
    assert out.get(Total) == Total(3) and out.get(Numbers) == Numbers([0, 1, 2])
    assert pipe.records["total"].cached is False and pipe.records["total"].seconds >= 0
    # a second pipeline over the same cache loads the product and does not need its inputs
    calls2 = Calls()
    pipe2 = Pipeline([SumNumbers(calls2), MakeNumbers(calls2)])
    assert pipe2.run(_ctx(tmp_path), targets=[Total]).get(Total) == Total(3)
    assert calls2.counts == {} and pipe2.records["total"].cached is True
    assert [r.cached for r in pipe2.plan(_ctx(tmp_path))] == [False, True]
    # nothing half-written is left: the entry, its lock, no temp or work folder
    names = sorted(p.name for p in (tmp_path / "stages" / "total").iterdir())
    assert len(names) == 2 and names[1].endswith(".lock")


def test_key_follows_identity_inputs_and_data(tmp_path):
    calls = Calls()
    keys = {}
    for label, stages, data in (("base", [SumNumbers(calls), MakeNumbers(calls)], "d"),
                                ("n=4", [SumNumbers(calls), MakeNumbers(calls, n=4)], "d"),
                                ("data", [SumNumbers(calls), MakeNumbers(calls)], "other"),
                                ("label", [SumNumbers(calls), MakeNumbers(calls), Labeller("label")], "d")):
        pipe = Pipeline(stages)
        keys[label] = pipe.key(pipe.provider[Total], _ctx(tmp_path, data))
    assert len(set(keys.values())) == 4
    pipe = Pipeline([SumNumbers(calls), MakeNumbers(calls), Labeller("label")])
    assert pipe.run(_ctx(tmp_path)).get(Total) == Total(103)  # the optional input is passed when provided


def test_fallback_steps_aside_and_duplicates_fail(tmp_path):
    calls = Calls()
    pipe = Pipeline([TotalSignals("fallback"), SumNumbers(calls), MakeNumbers(calls)])
    assert pipe.run(_ctx(tmp_path)).get(Signals).metrics == {"total": 3.0}
    pipe = Pipeline([TotalSignals("fallback"), OtherSignals("other"), SumNumbers(calls), MakeNumbers(calls)])
    assert [s.name for s in pipe.stages if s.provides is Signals] == ["other"]
    assert pipe.run(_ctx(tmp_path)).get(Signals).metrics == {"other": 1.0}
    with pytest.raises(ConfigError, match="both provide Signals"):
        Pipeline([OtherSignals("a"), OtherSignals("b"), SumNumbers(calls), MakeNumbers(calls)])


def test_missing_provider_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="needs a Numbers"):
        Pipeline([SumNumbers(Calls())], where="s.yaml")
    with pytest.raises(ConfigError, match="no stage of the strategy provides Label"):
        Pipeline([MakeNumbers(Calls())]).run(_ctx(tmp_path), targets=[Label])


def test_a_failing_stage_stores_nothing(tmp_path):
    class Broken(SumNumbers):
        def save(self, product, folder):
            (folder / "part").write_text("half")
            raise OSError("disk full")

    calls = Calls()
    with pytest.raises(OSError):
        Pipeline([Broken(calls), MakeNumbers(calls)]).run(_ctx(tmp_path))
    cache = StageCache(tmp_path)
    folder = tmp_path / "stages" / "total"
    assert not any(p.name.startswith(".") for p in folder.iterdir())
    assert not any(cache.has("total", p.name) for p in folder.iterdir())


def test_products_lookup():
    p = Products({Total: Total(1)})
    assert p.get(Total) == Total(1) and p.get(Label) is None and Total in p and len(p) == 1


def test_timings_table(tmp_path):
    pipe = Pipeline([SumNumbers(Calls()), MakeNumbers(Calls())])
    pipe.run(_ctx(tmp_path))
    t = pipe.timings()
    assert list(t["stage"]) == ["numbers", "total"] and list(t["cached"]) == [False, False]
