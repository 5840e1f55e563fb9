"""The CMM strategy files compose and their model sections validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmm_bt.config.loader import load_strategy_dict, parse_strategy
from cmm_bt.registry import Registry
from cmm_bt_plugins.cmm.moe import MOE_CLASSES
from cmm_bt_plugins.cmm.probe import FluorescentProbe
from cmm_bt_plugins.cmm.students import STUDENT_CLASSES

ROOT = Path(__file__).resolve().parents[3] / "strategies"
FILES = ["cmm.yaml", "kd-output.yaml", "kd-fitnets.yaml", *[f"ablations/{p.name}" for p in sorted((ROOT / "ablations").glob("*.yaml"))]]


@pytest.mark.parametrize("name", FILES)
def test_strategy_model_sections_validate(name):
    reg = Registry()
    reg.register("probe", FluorescentProbe, "t")
    for c in (*STUDENT_CLASSES,):
        reg.register("student", c, "t")
    for c in MOE_CLASSES:
        reg.register("moe", c, "t")
    strat = parse_strategy(load_strategy_dict(ROOT / name), file=ROOT / name)
    assert strat.students is not None and strat.teacher is not None
    for section, kind in (("probe", "probe"), ("students", "student"), ("moe", "moe")):
        spec = getattr(strat, section)
        if spec is not None:
            reg.validate_params(kind, spec.name, spec.params)
    fams = strat.students.params.get("families")
    if name.startswith("ablations/no-"):
        assert name.split("no-")[1].split("-")[0] not in fams
    if name.startswith("kd-"):
        assert strat.probe is None and fams == [name[:-5]]
