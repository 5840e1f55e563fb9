"""A plugin that fails to load breaks no command that does not need it; usage errors exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cmm_bt import plugins as P


@pytest.fixture
def broken_dir(tmp_path, monkeypatch):
    """``CMM_BT_PLUGINS_DIR`` with one plugin file that fails to import."""
    folder = tmp_path / "local-plugins"
    folder.mkdir()
    (folder / "broken_policy.py").write_text("import no_such_module_for_cmm_bt\n")
    monkeypatch.setenv("CMM_BT_PLUGINS_DIR", str(folder))
    monkeypatch.setattr(P, "_reported", set())
    return folder


def test_help_works_with_a_broken_plugin(broken_dir):
    # a fresh process: the CLI loads the plugins at start-up (for plugin commands) before parsing
    res = subprocess.run([sys.executable, "-m", "cmm_bt", "--help"], capture_output=True, text=True,
                         env=dict(os.environ, CMM_BT_PLUGINS_DIR=str(broken_dir)))
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout
    lines = [line for line in res.stderr.splitlines() if "broken_policy" in line]
    assert lines == [f"warning: plugin 'broken_policy' ({broken_dir / 'broken_policy.py'}) failed to load: "
                     "ModuleNotFoundError: No module named 'no_such_module_for_cmm_bt'"]


def test_plugins_lists_the_broken_plugin(cli, broken_dir):
    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    rows = {r["name"]: r for r in json.loads(result.out)}
    assert rows["broken_policy"]["status"] == "broken"
    assert rows["broken_policy"]["origin"] == str(broken_dir / "broken_policy.py")
    assert "No module named 'no_such_module_for_cmm_bt'" in rows["broken_policy"]["error"]
    assert rows["data-files"]["status"] == "ok"
    table = cli("plugins")
    assert table.code == 0 and "broken" in table.out


def test_run_not_needing_the_broken_plugin_works(cli, broken_dir, tmp_path):
    result = cli("run", "strategies/fixed-spread.yaml", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert (tmp_path / "run" / "metrics.json").exists()
    assert sum("broken_policy" in line for line in result.err.splitlines()) == 1  # reported once


def _strategy_naming(tmp_path, policy):
    path = tmp_path / "needs-broken.yaml"
    path.write_text(f"dataset: synthetic\nexecution:\n  name: {policy}\n")
    return path


def test_run_naming_an_unknown_component_exits_2(cli, broken_dir, tmp_path):
    result = cli("validate", _strategy_naming(tmp_path, "broken-policy"))
    assert result.code == 2
    assert "unknown execution plugin 'broken-policy'" in result.err
    assert "Traceback" not in result.err


def test_unknown_component_error_names_the_broken_plugin(cli, broken_dir, tmp_path):
    result = cli("validate", _strategy_naming(tmp_path, "broken-policy"))
    assert result.code == 2
    last = result.err.splitlines()[-1]
    assert last.startswith("error: ") and "plugin 'broken_policy'" in last and "failed to load" in last


def test_broken_env_module_does_not_break_commands(cli, tmp_path, monkeypatch):
    (tmp_path / "cmm_bt_cli_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CMM_BT_PLUGINS", "cmm_bt_cli_broken_mod")
    monkeypatch.setattr(P, "_reported", set())
    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    rows = {r["name"]: r for r in json.loads(result.out)}
    assert rows["cmm_bt_cli_broken_mod"]["origin"] == "CMM_BT_PLUGINS"
    assert rows["cmm_bt_cli_broken_mod"]["error"] == "RuntimeError: boom at import"
    assert "warning: plugin 'cmm_bt_cli_broken_mod' (CMM_BT_PLUGINS) failed to load" in result.err


@pytest.mark.parametrize("args,fragment", [
    (("run", "--no-such-option"), "No such option: --no-such-option"),
    (("run",), "Missing argument 'strategy'"),
    (("run", "strategies/fixed-spread.yaml", "--dataset"), "requires an argument"),
    (("no-such-command",), "No such command 'no-such-command'"),
])
def test_usage_errors_exit_2_in_one_line(cli, args, fragment):
    result = cli(*args)
    assert result.code == 2
    [line] = [x for x in result.err.splitlines() if x.startswith("error:")]
    assert fragment in line and "internal error" not in line
