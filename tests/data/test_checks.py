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


# ----------------------------------------------------------------- issue 13: hostile input
def test_to_ticks_rejects_prices_beyond_int64_ticks_naming_the_row():
    for bad in (1e300, np.inf):
        with pytest.raises(DataError, match=r"^f\.csv: price: price out of range at row 2 "):
            checks.to_ticks(np.array([1.0, 2.0, bad]), 0.5, file="f.csv", key="price")
    with pytest.raises(DataError, match=r"at row 1 \(ask_price_2\)"):
        checks.to_ticks(np.array([[1.0, 2.0], [1.0, -np.inf * -1]]), 0.5, file="f", key="ask_price",
                        columns=["ask_price_1", "ask_price_2"])
    out = checks.to_ticks(np.array([1.0, np.nan, 0.0, 2.5]), 0.5)
    assert out.tolist() == [2, 0, 0, 5] and out.dtype == np.int64  # empty levels stay 0, never -2**63


def test_to_ticks_warns_about_off_grid_prices_and_fails_above_the_threshold():
    on = np.arange(1, 1001) * 0.05
    with pytest.raises(DataError, match=r"not multiples of the tick size 0\.03 .*tick size does not match"):
        checks.to_ticks(on, 0.03, file="f", key="price")
    few = on.copy()
    few[7] += 0.01  # 1 of 1000 off the 0.05 grid: 0.1 % < 1 %
    with pytest.warns(UserWarning, match=r"f: price: 1 of 1000 prices \(0\.10%\) are not multiples .* row 7"):
        checks.to_ticks(few, 0.05, file="f", key="price")
    checks.to_ticks(np.array([100.1, 100.3, 1990.7]), 0.1)  # float noise is not off-grid
    checks.to_ticks(np.array([1.0, 1.3]), 0.5, on_grid=False)  # computed prices (VWAPs): no check


def test_quantities_negative_nan_and_messages():
    with pytest.raises(DataError, match=r"^f: qty: negative quantity at row 1"):
        checks.check_quantity(np.array([1.0, -1.0]), "f", "qty")
    with pytest.raises(DataError, match=r"missing, non-finite or out-of-range quantity at row 0"):
        checks.check_quantity(np.array([np.nan, 1.0]), "f", "qty", present=np.array([True, True]))
    checks.check_quantity(np.array([np.nan, 1.0]), "f", "qty", present=np.array([False, True]))  # empty level
    with pytest.raises(DataError, match=r"non-positive quantity at row 1"):
        checks.check_quantity(np.array([1.0, 0.0]), "f", "qty", positive=True)
    with pytest.raises(DataError, match=r"^f: qty: non-positive qty at row 0$"):  # not "price"
        checks.check_positive(np.array([0.0]), "f", "qty")


def test_numeric_names_column_and_row_without_echoing_the_value():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["1.5", "root:x:0:0"]})
    with pytest.raises(DataError) as err:
        checks.numeric(df, ["a", "b"], "f.csv")
    assert str(err.value) == "f.csv: b: non-numeric value at row 1"
    assert checks.numeric(df.iloc[:1], ["a", "b"], "f").tolist() == [[1.0, 1.5]]


def test_library_messages_are_clipped():
    msg = checks.one_line(ValueError("x" * 5000))
    assert len(msg) <= checks.MAX_QUOTED
