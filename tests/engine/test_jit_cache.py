"""The engine's numba cache is dropped when any engine source changes (numba keys it per file only)."""

from __future__ import annotations

from cmm_bt.engine import _drop_stale_jit_cache


def test_cache_files_go_when_a_source_changes_and_stay_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "kernel.py").write_text("x = 1\n")
    (tmp_path / "compiled.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    for name in ("compiled.run_steps-60.py311.nbi", "compiled.run_steps-60.py311.1.nbc"):
        (cache / name).write_bytes(b"stale")
    assert _drop_stale_jit_cache(tmp_path)  # no stamp yet: built from unknown sources
    assert not list(cache.glob("*.nb*")) and (cache / "numba-sources.sha256").is_file()
    (cache / "compiled.run_steps-60.py311.nbi").write_bytes(b"fresh")
    assert not _drop_stale_jit_cache(tmp_path)  # unchanged sources: the cache stays
    assert (cache / "compiled.run_steps-60.py311.nbi").exists()
    (tmp_path / "kernel.py").write_text("x = 3\n")  # an edit of another module than compiled.py
    assert _drop_stale_jit_cache(tmp_path)
    assert not list(cache.glob("*.nb*"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert not _drop_stale_jit_cache(tmp_path)
