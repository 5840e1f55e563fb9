"""The CMM strategy files compose and their model sections validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmm_bt.api import Session
from cmm_bt.config.loader import load_strategy

ROOT = Path(__file__).resolve().parents[3] / "strategies"
FILES = ["cmm.yaml", "kd-output.yaml", "kd-fitnets.yaml", *[f"ablations/{p.name}" for p in sorted((ROOT / "ablations").glob("*.yaml"))]]


@pytest.fixture(scope="module")
def registry():
    return Session.start().registry


@pytest.mark.parametrize("name", FILES)
def test_strategy_model_sections_validate(name, registry):
    strat, _ = load_strategy(ROOT / name, registry=registry)  # both stages: sections and their params
    students, probe = strat.section("students"), strat.section("probe")
    assert students is not None and strat.section("teacher") is not None
    fams = students.params.get("families")
    if name.startswith("ablations/no-"):
        assert name.split("no-")[1].split("-")[0] not in fams
    if name.startswith("kd-"):
        assert probe is None and fams == [name[:-5]]
