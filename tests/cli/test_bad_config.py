"""Bad strategy files: one line on stderr naming the file and key, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "dataset: synthetic\nexecution: {name: fixed-spread, params: {}}\n"


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("dataset: synthetic\nexecution: {name: fixed-spread\n", ("bad.yaml", "malformed YAML", "line")),
        (GOOD + "colour: red\n", ("bad.yaml", "colour", "unknown key")),
        (GOOD + "seed: many\n", ("bad.yaml", "seed", "integer")),
        ("dataset: synthetic\nexecution: {name: avellaneda-stoiko}\n", ("bad.yaml", "execution", "did you mean 'avellaneda-stoikov'")),
        ("dataset: synthetic\nexecution: {name: fixed-spread, params: {half_spred_ticks: 2}}\n", ("bad.yaml", "execution.params.half_spred_ticks", "unknown key")),
        (GOOD + "engine: {queue_model: psychic}\n", ("bad.yaml", "engine.queue_model")),
        (GOOD + "engine: {seed: 1}\n", ("bad.yaml", "engine.seed", "unknown key")),  # the seed is top-level
        ("dataset: nosuchdata\nexecution: {name: fixed-spread}\n", ("dataset", "unknown dataset 'nosuchdata'")),
        ("dataset: synthetic\ndataset: synthetic\nexecution: {name: fixed-spread}\n", ("bad.yaml", "duplicate key 'dataset'")),
    ],
    ids=["malformed-yaml", "unknown-key", "wrong-type", "unknown-plugin", "unknown-param", "bad-engine", "engine-seed", "unknown-dataset", "duplicate-key"],
)
def test_bad_strategy_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, text, fragments):
    strategy = write(tmp_path, "bad.yaml", text)
    out = tmp_path / "run"
    result = cli("run", strategy, "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_extends_cycle(cli, tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n" + GOOD)
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    result = cli("validate", tmp_path / "a.yaml")
    assert_one_line_error(result, "extends cycle", "a.yaml -> b.yaml -> a.yaml")


def test_missing_strategy_file(cli, tmp_path):
    result = cli("run", tmp_path / "nope.yaml")
    assert_one_line_error(result, "nope.yaml", "file not found")


def test_bad_override(cli, tmp_path):
    strategy = write(tmp_path, "s.yaml", GOOD)
    result = cli("run", strategy, "-o", "engine.position_limit=lots", "--out", tmp_path / "run")
    assert_one_line_error(result, "engine.position_limit")
    assert not (tmp_path / "run").exists()


def test_missing_data_file(cli, tmp_path):
    manifest = write(tmp_path, "gone.yaml", "name: gone\nsource: cme\nfiles: [cme/nope_quotes.parquet, cme/nope_trades.parquet]\n")
    strategy = write(tmp_path, "s.yaml", f"dataset: {manifest}\nexecution: {{name: fixed-spread}}\n")
    result = cli("run", strategy, "--data-root", tmp_path, "--out", tmp_path / "run")
    assert_one_line_error(result, "gone.yaml", "data file not found: cme/nope_quotes.parquet")
    assert not (tmp_path / "run").exists()


def test_validate_accepts_shipped_strategies(cli):
    shipped = sorted(Path("strategies").glob("*.yaml"))
    assert shipped
    result = cli("validate", *shipped)
    assert result.code == 0, result.err


def _data_case(tmp_path: Path, source: str, files: dict[str, bytes], extra: str = "") -> tuple[Path, Path]:
    root = tmp_path / "root"
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    manifest = write(tmp_path, "m.yaml", f"name: m\nsource: {source}\nfiles: {list(files)}\n{extra}")
    strategy = write(tmp_path, "s.yaml", f"dataset: {manifest}\nexecution: {{name: fixed-spread}}\n")
    return strategy, root


def test_corrupted_parquet_is_exit_2_naming_the_file(cli, tmp_path):
    strategy, root = _data_case(tmp_path, "cme", {"q.parquet": b"PAR1 not really", "t.parquet": b"junk"},
                                "instrument: {symbol: X, tick_size: 0.1}\n")
    result = cli("run", strategy, "--data-root", root, "--out", tmp_path / "run")
    assert_one_line_error(result, "q.parquet")
    assert not (tmp_path / "run").exists()


def test_corrupted_gzip_is_exit_2_naming_the_file(cli, tmp_path):
    strategy, root = _data_case(tmp_path, "binance", {"cap.gz": b"\x1f\x8b\x08\x00garbage"},
                                "instrument: {symbol: X, tick_size: 0.1}\n")
    result = cli("run", strategy, "--data-root", root, "--out", tmp_path / "run")
    assert_one_line_error(result, "cap.gz")
    assert not (tmp_path / "run").exists()
