"""Built-in data plugins: ``binance``, ``cme``, ``china-datayes``, ``lobster``, ``generic``, ``synthetic``.

Registration only; each loader module is imported when the hook runs (cheap: numpy/pandas only).
"""

from __future__ import annotations

from cmm_bt import hookimpl


@hookimpl
def cmm_bt_register_data_sources(register):
    from cmm_bt_plugins.data.binance import BinanceCapture
    from cmm_bt_plugins.data.china import ChinaDataYes
    from cmm_bt_plugins.data.cme import CmeParquet
    from cmm_bt_plugins.data.generic import GenericSnapshots
    from cmm_bt_plugins.data.lobster import LobsterCsv
    from cmm_bt_plugins.data.synthetic import SyntheticBook

    register(BinanceCapture)
    register(CmeParquet)
    register(ChinaDataYes, aliases=("china",))
    register(LobsterCsv)
    register(GenericSnapshots)
    register(SyntheticBook)
