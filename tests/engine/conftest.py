"""Make ``engine_helpers`` (hand-built event tables, scripted policies) importable under importlib mode."""

from __future__ import annotations

import sys
from pathlib import Path

_here = str(Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
