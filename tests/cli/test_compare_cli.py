"""`cmm-bt compare` over several datasets prints per-dataset tables and writes the study table."""

from __future__ import annotations


def test_compare_over_two_datasets_writes_study_table(cli, tmp_path, data_root):
    table = tmp_path / "study.md"
    res = cli("compare", "strategies/fixed-spread.yaml", "strategies/avellaneda-stoikov.yaml",
              "--dataset", "synthetic", "--dataset", "cme-6b", "--out", tmp_path / "runs", "--table", table,
              "--paired", "fixed-spread", "avellaneda-stoikov")
    assert res.code == 0, res.err
    assert "Study" in res.out and "confidence interval" in res.out
    paired = res.out[res.out.index("Paired: fixed-spread − avellaneda-stoikov"):]
    assert "synthetic" in paired and "cme-6b" in paired and "p-value" in paired
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| Dataset | Strategy | EPnL | MAP |")
    rows = [line.split(" | ")[:2] for line in lines[2:]]
    assert rows == [["| synthetic", "fixed-spread"], ["| synthetic", "avellaneda-stoikov"],
                    ["| cme-6b", "fixed-spread"], ["| cme-6b", "avellaneda-stoikov"]]
    assert len(list((tmp_path / "runs").iterdir())) == 4


def test_paired_needs_runs_of_both_strategies(cli, tmp_path, data_root):
    res = cli("compare", "strategies/fixed-spread.yaml", "--dataset", "synthetic", "--out", tmp_path / "runs",
              "--paired", "fixed-spread", "glft")
    assert res.code == 2 and "no run of strategy 'glft'" in res.err
