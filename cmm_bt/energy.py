"""Energy per decision: CPU time measured, energy estimated with codecarbon's offline tracker.

:func:`measure_energy` runs a model's decision function repeatedly (at least ``min_decisions`` and
``min_seconds`` of wall time) between ``start`` and ``stop`` of a codecarbon
``OfflineEmissionsTracker`` (no network; ``tracking_mode="process"``: this process's CPU time; its
logger quiet, nothing written to disk) and returns the CPU time per decision (``time.process_time``,
every thread of the process) and the tracker's energy per decision. codecarbon measures the CPU by
RAPL where ``/sys/class/powercap`` is readable, else by its CPU power model (the CPU's TDP times the
process's share of the CPU time), RAM by its power model and an NVIDIA GPU by NVML; the
:attr:`EnergyEstimate.method` says which it used.

Settings (environment): ``CMM_BT_ENERGY=0`` turns the measurement off (:func:`measure_energy` returns
None); ``CMM_BT_ENERGY_SECONDS`` is the shortest measurement window (default 1 s; codecarbon's power
model reads the process's CPU time, counted in 10 ms ticks, so shorter windows are coarse);
``CMM_BT_ENERGY_COUNTRY`` is the ISO 3166-1 alpha-3 country code the offline tracker needs for
its carbon intensity (default ``USA``; energy does not depend on it). Plugins report an estimate with
:func:`energy_metrics` (flat ``metrics.json`` keys) and :func:`energy_row` (a row of the run's
:data:`ENERGY_TABLE` table, which carries the method in words).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

#: Name of the run's extra table with one row per measured model (``RunResult.extra``).
ENERGY_TABLE = "energy_per_decision"
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class EnergyEstimate:
    """What one measurement found (energies in joules, over the whole window)."""

    decisions: int
    wall_s: float
    cpu_s: float
    energy_j: float
    cpu_energy_j: float
    ram_energy_j: float
    gpu_energy_j: float
    method: str

    @property
    def cpu_us_per_decision(self) -> float:
        return 1e6 * self.cpu_s / self.decisions

    @property
    def energy_per_decision_j(self) -> float:
        return self.energy_j / self.decisions

    @property
    def cpu_energy_per_decision_j(self) -> float:
        return self.cpu_energy_j / self.decisions


def enabled() -> bool:
    return os.environ.get("CMM_BT_ENERGY", "1").strip().lower() not in ("0", "false", "no", "off")


def window_seconds() -> float:
    raw = os.environ.get("CMM_BT_ENERGY_SECONDS", "1.0")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"CMM_BT_ENERGY_SECONDS={raw!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"CMM_BT_ENERGY_SECONDS={raw!r} must be a finite number of seconds >= 0")
    return value


def country() -> str:
    return os.environ.get("CMM_BT_ENERGY_COUNTRY", "USA").strip().upper() or "USA"


def codecarbon_tracker():
    """A quiet offline codecarbon tracker of this process (no files, no network)."""
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level

    return OfflineEmissionsTracker(country_iso_code=country(), tracking_mode="process", log_level="error", output_methods=[],
                                   measure_power_secs=3600, allow_multiple_runs=True)


def rapl_readable() -> bool:
    """Whether an ``energy_uj`` counter under ``/sys/class/powercap`` can be read."""
    import glob

    for path in glob.glob("/sys/class/powercap/*/energy_uj"):
        try:
            with open(path) as f:
                f.read()
            return True
        except OSError:
            continue
    return False


def tracker_method(tracker: Any) -> str:
    """How codecarbon measured, in words, from the tracker's hardware list (``_hardware``)."""
    try:
        from codecarbon import __version__ as version
    except Exception:  # noqa: BLE001 - an injected tracker need not come with codecarbon
        version = "?"
    parts = []
    for hw in getattr(tracker, "_hardware", []) or []:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "?"))
            model = getattr(hw, "_model", "?")
            if mode == "intel_rapl":
                parts.append(f"CPU by RAPL ({model})")
            elif mode == "cpu_load":
                rapl = "RAPL readable but not used" if rapl_readable() else "no readable RAPL"
                parts.append(f"CPU by its power model: TDP {getattr(hw, '_tdp', '?')} W x this process's share of "
                             f"{getattr(hw, '_cpu_count', '?')} CPUs ({model}; {rapl})")
            elif mode == "constant":
                parts.append(f"CPU by a constant share of TDP {getattr(hw, '_tdp', '?')} W ({model})")
            else:
                parts.append(f"CPU by {mode} ({model})")
        elif kind == "RAM":
            parts.append("RAM by its power model")
        elif "GPU" in kind.upper():
            parts.append(f"GPU by NVML ({kind})" if "AMD" not in kind.upper() else f"GPU by {kind}")
        else:
            parts.append(kind)
    return f"codecarbon {version} offline, process: " + ("; ".join(parts) or "no hardware found")


def measure_energy(decide: Callable[[int], Any], *, min_decisions: int = 1, min_seconds: float | None = None,
                   tracker_factory: Callable[[], Any] | None = None) -> EnergyEstimate | None:
    """Call ``decide(i)`` for ``i = 0, 1, ...`` until at least ``min_decisions`` calls and ``min_seconds``
    of wall time (default :func:`window_seconds`), between the tracker's ``start`` and ``stop``; None when turned off
    (``CMM_BT_ENERGY=0``). The tracker (default :func:`codecarbon_tracker`) must have ``start()``,
    ``stop()`` and, after it, ``final_emissions_data`` with ``energy_consumed``, ``cpu_energy``,
    ``ram_energy``, ``gpu_energy`` in kWh."""
    if not enabled():
        return None
    if min_decisions < 1:
        raise ValueError("min_decisions must be at least 1")
    min_seconds = window_seconds() if min_seconds is None else min_seconds
    tracker = (tracker_factory or codecarbon_tracker)()
    clock, cpu = time.perf_counter, time.process_time
    n = 0
    tracker.start()
    try:
        w0, c0 = clock(), cpu()
        while n < min_decisions or clock() - w0 < min_seconds:
            decide(n)
            n += 1
        wall, cpu_s = clock() - w0, cpu() - c0
    finally:
        tracker.stop()
    d = tracker.final_emissions_data
    kwh = {k: float(getattr(d, k, 0.0) or 0.0) for k in ("energy_consumed", "cpu_energy", "ram_energy", "gpu_energy")}
    return EnergyEstimate(decisions=n, wall_s=wall, cpu_s=cpu_s, energy_j=kwh["energy_consumed"] * J_PER_KWH,
                          cpu_energy_j=kwh["cpu_energy"] * J_PER_KWH, ram_energy_j=kwh["ram_energy"] * J_PER_KWH,
                          gpu_energy_j=kwh["gpu_energy"] * J_PER_KWH, method=tracker_method(tracker))


def energy_metrics(e: EnergyEstimate | None, prefix: str = "") -> dict[str, float]:
    """``{prefix}energy_per_decision_j``, ``{prefix}cpu_energy_per_decision_j``, ``{prefix}cpu_us_per_decision``."""
    if e is None:
        return {}
    return {f"{prefix}energy_per_decision_j": e.energy_per_decision_j, f"{prefix}cpu_energy_per_decision_j": e.cpu_energy_per_decision_j,
            f"{prefix}cpu_us_per_decision": e.cpu_us_per_decision}


def energy_row(model: str, e: EnergyEstimate, path: str) -> dict[str, Any]:
    """A row of :data:`ENERGY_TABLE`: the model, the decision path timed and the whole estimate."""
    return {"model": model, "path": path, **asdict(e), "cpu_us_per_decision": e.cpu_us_per_decision,
            "energy_per_decision_j": e.energy_per_decision_j, "cpu_energy_per_decision_j": e.cpu_energy_per_decision_j}


__all__ = ["ENERGY_TABLE", "EnergyEstimate", "codecarbon_tracker", "country", "enabled", "energy_metrics", "energy_row",
           "measure_energy", "rapl_readable", "tracker_method", "window_seconds"]
