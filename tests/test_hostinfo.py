"""cmm_bt/hostinfo.py."""

from __future__ import annotations

import platform

from cmm_bt import hostinfo


def test_the_host_line_names_cpu_cores_and_versions():
    line = hostinfo.describe_host()
    assert line and "\n" not in line
    assert f"python {platform.python_version()}" in line and "numba " in line and " cpus" in line


def test_a_machine_without_proc_cpuinfo_still_gets_a_line(monkeypatch):
    monkeypatch.setattr(hostinfo, "_cpuinfo", lambda: {})
    hostinfo.describe_host.cache_clear()
    try:
        assert "flags unknown" in hostinfo.describe_host()
    finally:
        hostinfo.describe_host.cache_clear()
