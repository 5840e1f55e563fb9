"""Bootstrap intervals, paired tests and the model confidence set over episode PnL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmm_bt.stats import episode_frame, mean_interval, model_confidence_set, paired_difference


def test_interval_covers_the_mean_and_narrows_with_more_episodes():
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(40):
        iv = mean_interval(rng.normal(5.0, 2.0, 40), seed=i, reps=400)
        covered += iv.low <= 5.0 <= iv.high
        assert iv.low < iv.mean < iv.high and iv.n == 40
    assert covered >= 33  # ~95 % nominal; a broken interval (e.g. of single values) fails this
    wide = mean_interval(rng.normal(0, 1, 10), reps=400)
    narrow = mean_interval(rng.normal(0, 1, 400), reps=400)
    assert (narrow.high - narrow.low) < 0.5 * (wide.high - wide.low)


def test_too_few_episodes_give_no_interval():
    iv = mean_interval(np.array([1.0, 2.0]))
    assert iv.mean == 1.5 and np.isnan(iv.low) and np.isnan(iv.high) and iv.n == 2
    assert np.isnan(paired_difference(np.ones(2), np.zeros(2)).p_value)


def test_paired_difference_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, 60)  # a shared market component the pairing removes
    shifted = paired_difference(base + 1.0 + rng.normal(0, 0.5, 60), base)
    assert shifted.p_value < 0.01 and shifted.low > 0 and shifted.diff_mean == pytest.approx(1.0, abs=0.2)
    same = paired_difference(base + rng.normal(0, 0.5, 60), base)
    assert same.p_value > 0.05 and same.low < 0 < same.high


def test_episode_frame_pairs_by_start_time():
    from types import SimpleNamespace

    def run(starts, pnls):
        return SimpleNamespace(output=SimpleNamespace(episodes=pd.DataFrame({"start_ns": starts, "pnl": pnls})))

    f = episode_frame([run([30, 10, 20], [3.0, 1.0, 2.0]), run([10, 20, 40], [-1.0, -2.0, -4.0])], ["a", "b"])
    assert list(f.index) == [10, 20] and f["a"].tolist() == [1.0, 2.0] and f["b"].tolist() == [-1.0, -2.0]


def test_model_confidence_set_drops_a_clearly_worse_model():
    rng = np.random.default_rng(3)
    common = rng.normal(0, 1, 80)
    losses = pd.DataFrame({"good": common + rng.normal(0, 0.3, 80), "tie": common + rng.normal(0, 0.3, 80),
                           "bad": common + 1.5 + rng.normal(0, 0.3, 80)})
    p = model_confidence_set(losses, reps=500)
    assert p["bad"] < 0.05 < min(p["good"], p["tie"])


def test_models_with_identical_losses_share_one_p_value():
    # two strategies that never trade lose 0 on every episode: arch's MCS divides their zero difference
    # by a zero variance (NaN, then IndexError); the set treats them as one model
    rng = np.random.default_rng(4)
    common = rng.normal(0, 1, 80)
    losses = pd.DataFrame({"good": common + rng.normal(0, 0.3, 80), "idle": np.zeros(80), "idle2": np.zeros(80),
                           "bad": common + 1.5 + rng.normal(0, 0.3, 80)})
    p = model_confidence_set(losses, reps=500)
    assert list(p.index) == ["good", "idle", "idle2", "bad"] and p.notna().all()
    assert p["idle"] == p["idle2"] and p["bad"] < 0.05
    assert model_confidence_set(pd.DataFrame({"a": np.zeros(40), "b": np.zeros(40)})).tolist() == [1.0, 1.0]
