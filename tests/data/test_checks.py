from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from cmm_bt.data import checks
from cmm_bt.errors import DataError


def test_monotonic_names_first_bad_row_and_file():
    with pytest.raises(DataError, match=r"^f\.csv: ts: timestamps go backwards at row 3$"):
        checks.check_monotonic(np.array([1, 2, 2, 1, 0]), "f.csv", "ts")
    checks.check_monotonic(np.array([1, 1, 2]), "f.csv", "ts")
    with pytest.raises(DataError, match="at line 42"):
        checks.check_monotonic(np.array([5, 4]), "f", "ts", rows=np.array([41, 42]), unit="line")


def test_positive_prices_name_the_row():
    with pytest.raises(DataError, match=r"px: non-positive price at row 1"):
        checks.check_positive(np.array([[1.0, 2.0], [1.0, -2.0]]), "f", "px")
    with pytest.raises(DataError, match=r"at row 0"):
        checks.check_positive(np.array([0.0]), "f", "px")
    checks.check_positive(np.array([[1.0, 0.0], [1.0, np.nan]]), "f", "px", allow_empty=True)
    with pytest.raises(DataError, match=r"at row 1"):
        checks.check_positive(np.array([1.0, -1.0]), "f", "px", allow_empty=True)


def test_missing_columns_are_all_named():
    with pytest.raises(DataError, match=r"f\.csv: b: missing columns: b, c"):
        checks.require_columns(["a"], ["a", "b", "c"], "f.csv")


def test_reading_wraps_library_errors_into_one_line(tmp_path):
    bad = tmp_path / "x.csv.gz"
    payload = "".join(f"{i},{i * 7919 % 1013}\n" for i in range(2000)).encode()
    bad.write_bytes(gzip.compress(b"a,b\n" + payload)[:-200])
    with pytest.raises(DataError) as err:
        with checks.reading(bad, "CSV"):
            pd.read_csv(bad)
    msg = str(err.value)
    assert msg.startswith(str(bad)) and "cannot read CSV file" in msg and "\n" not in msg
    with pytest.raises(DataError, match="file not found"):
        checks.require_file(tmp_path / "nope.parquet")


def test_crossed_rows_are_dropped_with_a_warning_and_locked_rows_counted():
    meta: dict = {}
    with pytest.warns(UserWarning, match="dropped 1 crossed book row.*first at row 2"):
        keep = checks.drop_crossed(np.array([10, 10, 12, 11, 0]), np.array([11, 10, 11, 12, 5]), "f", meta)
    assert keep.tolist() == [True, True, False, True, True]
    assert meta == {"dropped_crossed_rows": 1, "locked_rows": 1}


def test_to_ticks_rounds_and_empties():
    assert checks.to_ticks(np.array([1995.7, np.nan, 0.0, 1995.6999999]), 0.1).tolist() == [19957, 0, 0, 19957]
