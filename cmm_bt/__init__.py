"""cmm-bt: a plugin-based market-making backtester."""

from cmm_bt.errors import CmmBtError
from cmm_bt.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["CmmBtError", "hookimpl", "__version__"]
