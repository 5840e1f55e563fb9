"""benchmarks/fill_trace.py on the first 2 minutes of a Binance capture (skipped without hftbacktest)."""

import importlib.util
import io
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

pytest.importorskip("hftbacktest")

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = Path("/work/shared/datasets/binance/usdm/btcusdt_20240808.gz")


def _module():
    spec = importlib.util.spec_from_file_location("fill_trace", ROOT / "benchmarks" / "fill_trace.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fill_trace"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not CAPTURE.exists(), reason="shared Binance capture not present")
def test_last_line_parses_and_counts_our_fills():
    from cmm_bt.engine.hftbacktest_ref import MMSpec, ReferenceMM, aligned_start, engine_config
    from cmm_bt.engine.loop import run_backtest

    ft = _module()
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert ft.main(["--data", str(CAPTURE), "--minutes", "2"]) == 0
    last = buf.getvalue().strip().splitlines()[-1]
    m = re.fullmatch(r"matched=(\d+) ours_only=(\d+) hbt_only=(\d+) first_divergence_ts=(-?\d+)", last)
    assert m, last
    matched, ours_only = int(m.group(1)), int(m.group(2))
    market, data, _ = ft.load_both([CAPTURE], None, None, None, 2)
    spec = MMSpec()  # the trace runs ours on hftbacktest's grid phase, as here
    fills = run_backtest(market, ReferenceMM.from_spec(spec), engine_config(spec),
                         start_ns=aligned_start(market, data, spec.interval_ns)).fills
    assert len(fills) > 0
    assert matched + ours_only == len(fills)  # one fill per order: no partial fills
