"""Classic market makers (fixed spread, Avellaneda–Stoikov, GLFT) as execution plugins."""

from __future__ import annotations

from cmm_bt import hookimpl


@hookimpl
def cmm_bt_register_execution(register):
    from cmm_bt_plugins.execution.avellaneda_stoikov import AvellanedaStoikov
    from cmm_bt_plugins.execution.classic_price import ClassicPrice
    from cmm_bt_plugins.execution.fixed_spread import FixedSpread
    from cmm_bt_plugins.execution.glft import GLFT

    register(FixedSpread, aliases=("fixed",))
    register(AvellanedaStoikov, aliases=("as",))
    register(GLFT)
    register(ClassicPrice)
