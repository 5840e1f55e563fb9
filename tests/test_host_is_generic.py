"""The host knows nothing of CMM: no model sections, hooks or imports of our plugins in cmm_bt/."""

from __future__ import annotations

import re
from pathlib import Path

from cmm_bt import hookspecs
from cmm_bt.components import HOST_KINDS
from cmm_bt.config.strategy import HOST_FIELDS

HOST = Path(__file__).resolve().parents[1] / "cmm_bt"
MODEL_WORDS = ("teacher", "probe", "student", "moe", "expert")


def test_no_model_fields_kinds_or_hooks():
    assert not any(w in f for f in HOST_FIELDS for w in MODEL_WORDS)
    assert set(HOST_KINDS) == {"data", "execution", "reporter"}
    hooks = [n for n in dir(hookspecs) if n.startswith("cmm_bt_")]
    assert hooks and not any(w in h for h in hooks for w in MODEL_WORDS)


def test_host_never_imports_the_plugins():
    offenders = [str(p.relative_to(HOST)) for p in HOST.rglob("*.py") if re.search(r"^\s*(from|import)\s+cmm_bt_plugins", p.read_text(), re.M)]
    assert offenders == []
