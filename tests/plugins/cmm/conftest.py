"""Fixtures of the CMM tests (helpers live in cmm_synthetic.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers module next to this file

from cmm_synthetic import Synthetic, make_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    return make_synthetic()
