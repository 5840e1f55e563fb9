"""benchmarks/cmm_latency.py: its last line, and no ratio without a teacher (a short run)."""

import importlib.util
import io
import re
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--steps", "40", "--rounds", "2", "--torch-steps", "0"]


def _main(argv):
    spec = importlib.util.spec_from_file_location("cmm_latency", ROOT / "benchmarks" / "cmm_latency.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cmm_latency"] = mod
    spec.loader.exec_module(mod)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = mod.main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_without_the_teacher_asked_for_the_ratio_is_nan():
    rc, out, _ = _main(SHORT + ["--no-teacher"])
    assert rc == 0
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"cmm_p50_us=([\d.]+) cmm_p99_us=([\d.]+) teacher_p50_us=nan teacher_p99_us=nan ratio=nan", last)
    assert m and 0 < float(m[1]) <= float(m[2])


def test_a_teacher_that_cannot_be_timed_is_a_failure_not_a_nan_ratio(tmp_path):
    rc, out, err = _main(SHORT + ["--model", str(tmp_path / "no-such-model")])
    assert rc == 1
    assert "ratio=" not in out and "teacher not" in err
