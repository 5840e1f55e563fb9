from __future__ import annotations

from cmm_bt.components import DataSource


def test_all_data_plugins_register():
    from cmm_bt_plugins import data

    got = {}
    data.cmm_bt_register_data_sources(register=lambda cls, aliases=(): got.setdefault(cls.name, (cls, aliases)))
    assert {"binance", "cme", "china-datayes", "lobster", "generic"} <= set(got)
    assert got["china-datayes"][1] == ("china",)
    assert all(issubclass(cls, DataSource) for cls, _ in got.values())


def test_registration_module_is_import_light():
    import subprocess
    import sys

    code = ("import sys, cmm_bt_plugins.data; "
            "print(any(m.startswith(('cmm_bt_plugins.data.binance', 'torch', 'transformers')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
