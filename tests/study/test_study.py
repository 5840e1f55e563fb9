"""cmm-bt study: the study file, the statistics over seeds x episodes, a small study end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cmm_bt.errors import ConfigError
from cmm_bt.study.analysis import distinct, hierarchical_interval
from cmm_bt.study.spec import engine_overrides, load_study


def _write(tmp_path, text: str):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


BASE = """
datasets: [synthetic]
strategies:
  fs: {file: %s, tune: {execution.params.half_spread_ticks: "1,3"}}
  as: {file: %s}
seeds: [0, 1]
protocol: {decision_interval_ms: 500, episode_mode: fixed, episode_length_s: 600}
tuning: {trials: 2, search: grid, split: validation, metric: epnl, seed: 7}
reference: fs
"""


def _study(tmp_path, root):
    return _write(tmp_path, BASE % (root / "strategies/fixed-spread.yaml", root / "strategies/avellaneda-stoikov.yaml"))


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t.replace("reference: fs", "reference: cmm"), "reference 'cmm' is not one of the strategies"),
    (lambda t: t.replace("split: validation", "split: test"), "would leak it"),
    (lambda t: t.replace("seeds: [0, 1]", "seeds: [0, 0]"), "seeds listed twice"),
    (lambda t: t.replace("tuning:", "tunning:"), "tunning: unknown key"),
    (lambda t: t.replace("as: {file: ", "as: {protocol: {order_qty: 2}, file: "), "says why"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, edit, fragment):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    path = _write(tmp_path, edit(BASE % (root / "strategies/fixed-spread.yaml", root / "strategies/avellaneda-stoikov.yaml")))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert fragment in str(err.value) and "s.yaml" in str(err.value)


def test_missing_strategy_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="strategies.fs.file: strategy file not found"):
        load_study(_write(tmp_path, BASE % ("nope.yaml", "nope.yaml")))


def test_protocol_becomes_engine_overrides():
    assert engine_overrides({"decision_interval_ms": 500, "queue_model": "power-prob", "maker_fee": 0.0}) == [
        "engine.decision_interval_ms=500", "engine.queue_model=power-prob", "engine.maker_fee=0.0"]


def _eps(pnl, start=None):
    pnl = np.asarray(pnl, float)
    return pd.DataFrame({"start_ns": np.arange(len(pnl)) if start is None else start, "pnl": pnl,
                         "mean_abs_position": 1.0, "fills": 1})


def test_identical_seeds_count_once_and_more_seeds_narrow_the_interval():
    rng = np.random.default_rng(0)
    one = _eps(rng.normal(0, 1, 20))
    assert len(distinct([one, one.copy(), one.copy()])) == 1
    mean = lambda e: float(e["pnl"].mean())  # noqa: E731
    _, lo1, hi1 = hierarchical_interval([one], mean, reps=400)
    many = [_eps(rng.normal(0, 1, 20)) for _ in range(8)]
    _, lo8, hi8 = hierarchical_interval(many, mean, reps=400)
    assert lo1 < 0.0 < hi1 and (hi8 - lo8) < 0.6 * (hi1 - lo1)


def test_small_study_end_to_end_and_resumes(cli, tmp_path, data_root):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    study, out = _study(tmp_path, root), tmp_path / "out"
    res = cli("study", study, "--out", out, "--workers", "1")
    assert res.code == 0, res.err[-2000:]
    for name in ("study.json", "paired.json", "mcs.json", "notes.json", "study.md", "report.html"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "study.json").read_text())
    assert {(r["strategy"], r["metric"]) for r in rows} >= {("fs", "epnl"), ("as", "pnl_map"), ("as", "sharpe")}
    r = next(r for r in rows if r["strategy"] == "fs" and r["metric"] == "epnl")
    assert set(r) >= {"dataset", "strategy", "metric", "mean", "ci_low", "ci_high", "n_episodes", "n_seeds"}
    assert r["n_seeds"] == 2 and r["n_distinct_seeds"] == 1  # a deterministic strategy: seeds repeat
    paired = json.loads((out / "paired.json").read_text())
    assert [(p["a"], p["b"], p["metric"]) for p in paired] == [("as", "fs", "epnl")]
    assert set(paired[0]) >= {"dataset", "a", "b", "metric", "diff_mean", "ci_low", "ci_high", "p_value"}
    # tuned on validation (2 grid trials), then each seed on test, with the protocol's engine settings
    assert len([p for p in (out / "tuning" / "synthetic" / "fs" / "trials").iterdir() if not p.name.startswith(".")]) == 2
    trial = next(p for p in (out / "tuning" / "synthetic" / "fs" / "trials").iterdir() if not p.name.startswith("."))
    assert "seed: 7" in (trial / "config.yaml").read_text()  # the tuning runs use the tuning seed
    assert json.loads((out / "notes.json").read_text()) == []  # classic market makers: no plugin notes, no energy table
    run_cfg = (out / "runs" / "synthetic" / "as" / "seed-1" / "config.yaml").read_text()
    assert "decision_interval_ms: 500" in run_cfg and "split: test" in run_cfg and "seed: 1" in run_cfg
    assert "<img" in (out / "report.html").read_text()
    mtime = (out / "runs" / "synthetic" / "as" / "seed-1" / "metrics.json").stat().st_mtime
    again = cli("study", study, "--out", out, "--workers", "1")
    assert again.code == 0 and "2 of 2 trials found complete" in again.out and "test runs (" not in again.out
    assert (out / "runs" / "synthetic" / "as" / "seed-1" / "metrics.json").stat().st_mtime == mtime


def test_study_overrides_go_to_the_strategies_with_that_section(tmp_path):
    from pathlib import Path

    from cmm_bt.study.runner import strategy_overrides

    root = Path(__file__).resolve().parents[2]
    text = f"""
datasets: [synthetic]
strategies:
  cmm: {{file: {root / 'strategies/cmm.yaml'}, overrides: [students.params.max_epochs=3]}}
  fs: {{file: {root / 'strategies/fixed-spread.yaml'}}}
protocol: {{decision_interval_ms: 1000}}
overrides: [teacher.params.max_samples=2000, teacher.params.stride=2]
reference: cmm
"""
    study, base = load_study(_write(tmp_path, text))
    assert strategy_overrides(study, "cmm", base) == ["teacher.params.max_samples=2000", "teacher.params.stride=2",
                                                      "students.params.max_epochs=3", "engine.decision_interval_ms=1000"]
    assert strategy_overrides(study, "fs", base) == ["engine.decision_interval_ms=1000"]
    with pytest.raises(ConfigError, match=r"overrides\.0: no strategy has a `rl:` section"):
        load_study(_write(tmp_path, text.replace("teacher.params.max_samples=2000", "rl.params.total_timesteps=10")))
    with pytest.raises(ConfigError, match="engine settings go in `protocol`"):
        load_study(_write(tmp_path, text.replace("teacher.params.stride=2", "engine.order_qty=2")))


def test_notes_collapse_over_strategies_and_name_the_seeds():
    from types import SimpleNamespace

    from cmm_bt.study.analysis import note_rows

    def run(ds, name, seed):
        return SimpleNamespace(dataset=ds, strategy=name, seed=seed, result=SimpleNamespace(extra={}))

    study = SimpleNamespace(datasets=["d"], seeds=[0, 1], strategies={"a": None, "b": None}, reference="a")
    runs = [run("d", n, s) for n in ("a", "b") for s in (0, 1)]
    notes = {("d", n, s): {"samples": "2000 / 2000"} for n in ("a", "b") for s in (0, 1)}
    notes["d", "a", 0]["probe"] = {"mid": {"low": "layers 0–2"}}
    notes["d", "a", 1]["probe"] = {"mid": {"low": "layers 3–5"}}
    rows = note_rows(SimpleNamespace(study=study, runs=runs, notes=notes))
    assert [(r["label"], r["runs"]) for r in rows] == [("probe", ["a (seeds 0)"]), ("probe", ["a (seeds 1)"]), ("samples", ["a", "b"])]
    assert rows[0]["value"] == {"mid": {"low": "layers 0–2"}}


def test_episode_matrix_counts_each_market_episode_once():
    """A deterministic strategy replays the same episodes under every seed: the paired tests and the
    MCS see one row per episode (seed means), so copies never narrow an interval."""
    from types import SimpleNamespace as NS

    from cmm_bt.study.analysis import episode_matrix

    def run(name, seed, pnl):
        eps = pd.DataFrame({"start_ns": [10, 20, 30], "pnl": pnl})
        return NS(dataset="d", strategy=name, seed=seed, result=NS(output=NS(episodes=eps)))

    runs = [run("fixed", s, [1.0, 2.0, 3.0]) for s in range(5)]
    runs += [run("learned", s, [s, 2.0 * s, 0.0]) for s in range(5)]
    m = episode_matrix(NS(study=NS(strategies={"fixed": 0, "learned": 0}), runs=runs), "d")
    assert list(m.index) == [10, 20, 30]
    assert m["fixed"].tolist() == [1.0, 2.0, 3.0] and m["learned"].tolist() == [2.0, 4.0, 0.0]
