"""The machine a timing was taken on, in one line (benchmarks print it first, run folders keep it
in ``run.json``).

Timings on this project's shared development machines depend on the host under the VM: the same
bfloat16 matrix products ran 3.8x and 2.0x as fast as float32 ones on two of them.  So a benchmark
names its CPU (model, x86 family / model, the vector extensions that change our kernels' speed),
its cores and the library versions that compile those kernels."""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path

#: CPU flags that change the speed of our numeric paths (AVX-512 kernels, bfloat16 / int8 products, AMX tiles)
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():  # the first processor
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


@functools.cache  # the host does not change under a process
def describe_host() -> str:
    """``<cpu model> (family F model M), N cpus, flags …; python …, numpy …, numba …, torch …``."""
    info = _cpuinfo()
    model = info.get("model name") or platform.processor() or platform.machine()
    where = f" (family {info['cpu family']} model {info['model']})" if "cpu family" in info and "model" in info else ""
    flags = set(info.get("flags", "").split())
    have = " ".join(f for f in _FLAGS if f in flags) if flags else "unknown"
    libs = ", ".join(f"{p} {_version(p)}" for p in ("numpy", "numba", "torch"))
    return f"{model}{where}, {os.cpu_count()} cpus, flags {have}; python {platform.python_version()}, {libs}"


__all__ = ["describe_host"]
