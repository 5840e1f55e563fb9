from __future__ import annotations

import numpy as np

from cmm_bt_plugins.llm.prompts import PromptTemplate, render_prompts, step_fields


def test_default_prompt_is_short_and_reflects_the_window(small_feature_set):
    fs = small_feature_set
    tpl = PromptTemplate()
    p = render_prompts(tpl, fs.X[:3], fs.feature_names, fs.spec.levels)
    assert len(p) == 3 and p[0].startswith(tpl.header) and p[0].endswith("Next:")
    assert p[0].count("\n") == 1 + tpl.steps
    assert len(p[0]) < 400
    assert p == render_prompts(tpl, fs.X[:3], fs.feature_names, fs.spec.levels)


def test_fields_by_hand(small_feature_set):
    fs = small_feature_set
    f = step_fields(fs.X[20:22], fs.feature_names, fs.spec.levels)
    b = np.expm1(fs.X[20:22, :, fs.col("bid_sz_1")].astype(float))
    a = np.expm1(fs.X[20:22, :, fs.col("ask_sz_1")].astype(float))
    np.testing.assert_allclose(f["imb"], (b - a) / (b + a), rtol=1e-6)
    np.testing.assert_allclose(f["spread"], fs.X[20:22, :, fs.col("spread")])
    custom = PromptTemplate(header="H\n", line="{spread:.0f}|{dmid:+.1f}\n", footer="rv={rvol:.3f}", steps=2)
    text = render_prompts(custom, fs.X[:1], fs.feature_names, fs.spec.levels)[0]
    sp = fs.X[0, -2:, fs.col("spread")]
    dm = fs.X[0, -2:, fs.col("dmid")] + 0.0
    assert text == f"H\n{sp[0]:.0f}|{dm[0]:+.1f}\n{sp[1]:.0f}|{dm[1]:+.1f}\nrv={fs.X[0, -1, fs.col('rvol')]:.3f}"
