"""`cmm-bt compare --executor local --workers 2`: the runs go to worker processes, results unchanged."""

from __future__ import annotations

import json

TIMINGS = {"wall_s", "run_wall_s", "events_per_s", "decisions_per_s", "decision_latency_us_p50", "decision_latency_us_p99"}
STRATEGIES = ("strategies/fixed-spread.yaml", "strategies/avellaneda-stoikov.yaml")


def _metrics(root):
    out = {}
    for run in sorted(root.iterdir()):
        m = json.loads((run / "metrics.json").read_text())
        out[run.name.split("-cffex-if-")[0]] = {k: v for k, v in m.items() if k not in TIMINGS}
    return out


def test_compare_on_two_workers_matches_compare_in_process(cli, tmp_path, data_root):
    serial = cli("compare", *STRATEGIES, "-d", "cffex-if", "--out", tmp_path / "serial", "--data-root", data_root)
    assert serial.code == 0, serial.err
    pooled = cli("compare", *STRATEGIES, "-d", "cffex-if", "--out", tmp_path / "pool", "--data-root", data_root,
                 "--executor", "local", "--workers", "2")
    assert pooled.code == 0, pooled.err
    assert "running 2 runs on the local executor, 2 workers" in pooled.out
    assert "Comparison" in pooled.out
    assert _metrics(tmp_path / "serial") == _metrics(tmp_path / "pool")


def test_a_failing_run_on_a_worker_exits_2_with_its_one_line_error(cli, tmp_path, data_root):
    res = cli("compare", "strategies/avellaneda-stoikov.yaml", "-d", "cffex-if", "--out", tmp_path / "pool",
              "-o", "execution.params.horizon=fixed", "-o", "execution.params.horizon_s=null",
              "--data-root", data_root, "--workers", "1")
    assert res.code == 2, res.err
    assert "horizon 'fixed' needs horizon_s" in res.err
