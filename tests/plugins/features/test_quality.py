from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt_plugins.features.quality import prediction_quality, quality_table


def test_prediction_quality_by_hand():
    y = np.array([1.0, -1.0, 0.0, 2.0])
    p = np.array([0.5, 1.0, 0.0, 2.0])
    q = prediction_quality(y, p, "mid")
    assert q["n"] == 4
    assert q["mae"] == pytest.approx((0.5 + 2.0) / 4)
    assert q["rmse"] == pytest.approx(np.sqrt((0.25 + 4.0) / 4))
    sst = np.sum((y - y.mean()) ** 2)
    assert q["r2"] == pytest.approx(1 - 4.25 / sst)
    assert q["diracc"] == pytest.approx(2 / 3)  # of the 3 non-zero moves, 2 right
    assert prediction_quality(y, np.zeros(4), "mid")["diracc"] == 0.0  # zero-change baseline
    assert "diracc" not in prediction_quality(y, p, "spread")


def test_non_finite_pairs_are_dropped():
    q = prediction_quality(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, np.inf]), "volume")
    assert q["n"] == 1 and q["mae"] == 0.0 and np.isnan(q["r2"])


def test_quality_table():
    y = pd.DataFrame({"mid": [1.0, -1.0], "spread": [1.0, 2.0], "volume": [0.0, 1.0]})
    t = quality_table(y, {"m": y, "zero": y * 0}, np.array([True, True]))
    assert len(t) == 6 and set(t["model"]) == {"m", "zero"}
    assert (t[t["model"] == "m"]["mae"] == 0).all()
