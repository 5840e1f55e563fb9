"""cmm_bt.energy: the decision loop, kWh -> J, the method in words; an injected tracker (no power readings)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from cmm_bt import energy


class CPU:  # named like codecarbon's hardware classes: tracker_method reads the class name
    def __init__(self, mode: str):
        self._mode, self._model, self._tdp, self._cpu_count = mode, "Test CPU", 100, 4


class RAM:
    pass


class GPU:
    pass


class FakeTracker:
    """start/stop and final_emissions_data as codecarbon's tracker has them (energies in kWh)."""

    def __init__(self, hardware, kwh=(2e-6, 1.5e-6, 0.5e-6, 0.0)):
        self._hardware, self.kwh, self.calls = hardware, kwh, []

    def start(self):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")
        total, cpu, ram, gpu = self.kwh
        self.final_emissions_data = SimpleNamespace(energy_consumed=total, cpu_energy=cpu, ram_energy=ram, gpu_energy=gpu)


def test_joules_per_decision_from_the_trackers_kwh():
    tracker = FakeTracker([CPU("cpu_load"), RAM()])
    seen = []
    e = energy.measure_energy(seen.append, min_decisions=40, min_seconds=0.0, tracker_factory=lambda: tracker)
    assert tracker.calls == ["start", "stop"] and seen == list(range(40)) and e.decisions == 40
    assert e.energy_j == pytest.approx(2e-6 * 3.6e6) and e.cpu_energy_j == pytest.approx(1.5e-6 * 3.6e6)
    assert e.energy_per_decision_j == pytest.approx(7.2 / 40) and e.cpu_energy_per_decision_j == pytest.approx(5.4 / 40)
    assert e.cpu_us_per_decision == pytest.approx(1e6 * e.cpu_s / 40)
    m = energy.energy_metrics(e, "cmm_")
    assert m == {"cmm_energy_per_decision_j": e.energy_per_decision_j, "cmm_cpu_energy_per_decision_j": e.cpu_energy_per_decision_j,
                 "cmm_cpu_us_per_decision": e.cpu_us_per_decision}
    row = energy.energy_row("cmm", e, "students + MoE")
    assert row["model"] == "cmm" and row["path"] == "students + MoE" and row["method"] == e.method and row["decisions"] == 40


def test_the_window_lasts_at_least_min_seconds():
    e = energy.measure_energy(lambda i: None, min_decisions=1, min_seconds=0.05, tracker_factory=lambda: FakeTracker([]))
    assert e.wall_s >= 0.05 and e.decisions > 1


def test_the_tracker_is_stopped_when_a_decision_fails():
    tracker = FakeTracker([])

    def boom(i):
        raise RuntimeError("model broke")

    with pytest.raises(RuntimeError, match="model broke"):
        energy.measure_energy(boom, tracker_factory=lambda: tracker)
    assert tracker.calls == ["start", "stop"]


@pytest.mark.parametrize("hardware, words", [
    ([CPU("intel_rapl"), RAM()], ["CPU by RAPL (Test CPU)", "RAM by its power model"]),
    ([CPU("cpu_load")], ["CPU by its power model: TDP 100 W", "share of 4 CPUs"]),
    ([CPU("constant")], ["constant share of TDP 100 W"]),
    ([CPU("cpu_load"), GPU()], ["GPU by NVML"]),
])
def test_the_method_says_how_it_measured(hardware, words):
    e = energy.measure_energy(lambda i: None, min_seconds=0.0, tracker_factory=lambda: FakeTracker(hardware))
    assert e.method.startswith("codecarbon ") and "offline" in e.method
    for w in words:
        assert w in e.method, (w, e.method)


def test_off_and_bad_settings(monkeypatch):
    monkeypatch.setenv("CMM_BT_ENERGY", "0")
    assert energy.measure_energy(lambda i: None, tracker_factory=lambda: pytest.fail("no tracker when off")) is None
    assert energy.energy_metrics(None) == {}
    monkeypatch.setenv("CMM_BT_ENERGY", "1")
    monkeypatch.setenv("CMM_BT_ENERGY_SECONDS", "soon")
    with pytest.raises(ValueError, match="CMM_BT_ENERGY_SECONDS"):
        energy.measure_energy(lambda i: None, tracker_factory=lambda: FakeTracker([]))
    monkeypatch.setenv("CMM_BT_ENERGY_SECONDS", "0.01")
    assert energy.window_seconds() == 0.01
    monkeypatch.setenv("CMM_BT_ENERGY_COUNTRY", "fra")
    assert energy.country() == "FRA"
    with pytest.raises(ValueError, match="min_decisions"):
        energy.measure_energy(lambda i: None, min_decisions=0, tracker_factory=lambda: FakeTracker([]))


def test_codecarbon_offline_tracker_writes_nothing(tmp_path, monkeypatch):
    """The real tracker: offline, quiet, no files; whatever it reads, the method is said and energy is finite."""
    monkeypatch.chdir(tmp_path)
    e = energy.measure_energy(lambda i: sum(range(1000)), min_decisions=10, min_seconds=0.05)
    assert e.decisions >= 10 and e.method.startswith("codecarbon") and "CPU by" in e.method
    assert math.isfinite(e.energy_j) and e.energy_j >= e.cpu_energy_j >= 0
    assert list(tmp_path.iterdir()) == []
