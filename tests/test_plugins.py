"""Plugin loading (cmm_bt.plugins): a plugin that fails to load is isolated, reported once and listed."""

from __future__ import annotations

import importlib
import textwrap

import pytest

from cmm_bt import plugins as P
from cmm_bt.errors import CmmBtError

GOOD = """
from cmm_bt import hookimpl

@hookimpl
def cmm_bt_before_run(run):
    pass
"""


@pytest.fixture(autouse=True)
def _fresh_reports(monkeypatch):
    monkeypatch.setattr(P, "_reported", set())


def write(folder, name, text):
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def load(**kw):
    return P.build_plugin_manager(P.PluginSettings(load_entry_points=False, **kw))


def test_broken_file_is_recorded_and_the_others_load(tmp_path, capsys):
    bad = write(tmp_path, "bad", "import no_such_module_for_cmm_bt\n")
    write(tmp_path, "good", GOOD)
    pm = load(plugins_dir=tmp_path)
    assert pm.get_plugin("good") is not None and pm.get_plugin("bad") is None
    [broken] = P.broken_plugins(pm)
    assert (broken.name, broken.origin) == ("bad", str(bad))
    assert broken.error == "ModuleNotFoundError: No module named 'no_such_module_for_cmm_bt'"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: plugin 'bad' ({bad}) failed to load: {broken.error}"]
    assert P.broken_hint(pm) == f"; {broken}"


def test_a_broken_plugin_is_reported_once_per_process(tmp_path, capsys):
    write(tmp_path, "bad", "raise RuntimeError('boom')\n")
    load(plugins_dir=tmp_path)
    pm = load(plugins_dir=tmp_path)
    assert [b.error for b in P.broken_plugins(pm)] == ["RuntimeError: boom"]
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_syntax_error_is_one_line(tmp_path):
    write(tmp_path, "bad", "def f(:\n")
    [broken] = P.broken_plugins(load(plugins_dir=tmp_path))
    assert broken.error.startswith("SyntaxError: ") and "\n" not in broken.error


def test_broken_env_module(tmp_path, monkeypatch, capsys):
    write(tmp_path, "cmm_bt_test_broken_mod", "raise ImportError('missing dependency xyz')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = load(extra_modules=("cmm_bt_test_broken_mod",))
    [broken] = P.broken_plugins(pm)
    assert (broken.name, broken.origin, broken.error) == (
        "cmm_bt_test_broken_mod", "CMM_BT_PLUGINS", "ImportError: missing dependency xyz")
    assert "(CMM_BT_PLUGINS) failed to load" in capsys.readouterr().err


def test_broken_entry_point_names_its_distribution(tmp_path, monkeypatch):
    dist = tmp_path / "cmm_bt_fake_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cmm-bt-fake-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cmm_bt]\nfake = cmm_bt_fake_plugin_mod\n")
    write(tmp_path, "cmm_bt_fake_plugin_mod", "raise ValueError('bad value at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    pm = P.build_plugin_manager(P.PluginSettings(only_entry_points=("fake",)))
    [broken] = P.broken_plugins(pm)
    assert (broken.name, broken.origin) == ("fake", "entry point cmm-bt-fake-plugin:fake")
    rows = {r["name"]: r for r in P.plugin_table(pm, P.Hooks(pm).build_registry())}
    assert rows["fake"]["status"] == "broken"
    assert rows["fake"]["distribution"] == "cmm-bt-fake-plugin"
    assert rows["fake"]["error"] == "ValueError: bad value at import"


def test_unknown_hook_marks_only_that_plugin_broken(tmp_path):
    write(tmp_path, "typo", """
        from cmm_bt import hookimpl

        @hookimpl
        def cmm_bt_befor_run(run):
            pass
    """)
    write(tmp_path, "good", GOOD)
    pm = load(plugins_dir=tmp_path)
    assert pm.get_plugin("typo") is None and pm.get_plugin("good") is not None
    [broken] = P.broken_plugins(pm)
    assert broken.error == "implements the unknown hook 'cmm_bt_befor_run'"
    pm.check_pending()  # nothing left that pluggy would refuse


def test_unmarked_hook_functions_get_one_warning(tmp_path, capsys):
    path = write(tmp_path, "forgot", """
        from cmm_bt import hookimpl

        def cmm_bt_register_execution(register):
            pass

        def cmm_bt_before_run(run):
            pass

        @hookimpl
        def cmm_bt_after_run(run, result):
            pass
    """)
    pm = load(plugins_dir=tmp_path)
    assert pm.get_plugin("forgot") is not None and not P.broken_plugins(pm)
    assert capsys.readouterr().err.splitlines() == [
        f"warning: plugin 'forgot' ({path}) defines cmm_bt_before_run, cmm_bt_register_execution without "
        "@hookimpl; pluggy ignores them (decorate them with @cmm_bt.hookimpl)"
    ]


def test_plugin_file_may_define_dataclasses(tmp_path):
    write(tmp_path, "dc", """
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int
    """)
    pm = load(plugins_dir=tmp_path)
    assert pm.get_plugin("dc") is not None and not P.broken_plugins(pm)


def test_missing_plugins_dir_is_still_an_error(tmp_path):
    with pytest.raises(CmmBtError, match="plugins directory not found"):
        load(plugins_dir=tmp_path / "nope")


def test_plain_pluggy_manager_has_no_broken_plugins():
    import pluggy

    assert P.broken_plugins(pluggy.PluginManager("cmm_bt")) == []
    assert P.broken_hint(pluggy.PluginManager("cmm_bt")) == ""


def test_a_register_hook_that_raises_breaks_only_its_plugin(capsys):
    from cmm_bt import hookimpl
    from cmm_bt.api import Session

    class Faulty:
        @hookimpl
        def cmm_bt_register_execution(self, register):
            raise RuntimeError("boom")

    session = Session.start()
    session.hooks.pm.register(Faulty(), name="faulty")
    reg = session.registry
    assert "fixed-spread" in reg.names("execution")  # the other plugins' components are there
    assert [b.name for b in reg.broken] == ["faulty"] and "RuntimeError: boom" in reg.broken[0].error
    assert "plugin 'faulty'" in capsys.readouterr().err
