"""pyproject.toml installs every package of the source tree (a missing one imports from a checkout but not
from a wheel) and lists no package that does not exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _tree_packages() -> set[str]:
    """Import names of the folders with an ``__init__.py`` under ``cmm_bt/`` and ``plugins/``, the latter
    mapped to ``cmm_bt_plugins`` as ``package-dir`` says."""
    dirs = {import_name: Path(folder) for import_name, folder in _pyproject()["package-dir"].items()}
    dirs.setdefault("cmm_bt", Path("cmm_bt"))
    out = set()
    for import_name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" not in rel.parts:
                out.add(".".join((import_name, *rel.parts)))
    return out


def test_plugins_folder_is_the_cmm_bt_plugins_package():
    assert _pyproject()["package-dir"] == {"cmm_bt_plugins": "plugins"}


def test_every_package_is_installed():
    missing = sorted(_tree_packages() - set(_pyproject()["packages"]))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_no_listed_package_is_missing_from_the_tree():
    stale = sorted(set(_pyproject()["packages"]) - _tree_packages())
    assert not stale, f"pyproject.toml lists packages without an __init__.py: {stale}"
