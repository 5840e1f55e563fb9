from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from cmm_bt_plugins.cmm.probe import (
    FluorescentProbe,
    ProbeResult,
    assign_regimes,
    excitation,
    field_perturbation,
    normalise,
    peak_band,
    plot_heatmaps,
    regime_thresholds,
    render_heatmaps,
    specialisation_index,
)

from cmm_synthetic import MID_LAYER, N_LAYERS, SPREAD_LAYER, fake_hidden


def _run(synthetic, **params):
    s = synthetic
    probe = FluorescentProbe(FluorescentProbe.Config(band_width=1, **params))
    train_rows = np.flatnonzero(np.isin(s.sel, s.train))
    return probe.run(s.features, s.Y[s.sel], s.vol[s.sel], train_rows)


def test_probe_recovers_planted_layers(synthetic):
    res = _run(synthetic)
    assert res.Phi.shape == (N_LAYERS, 3, 2)
    for r in range(2):
        assert res.peak_layers(0, r) == [MID_LAYER]
        assert res.peak_layers(1, r) == [SPREAD_LAYER]
        # the planted layer holds most of the task's mass
        assert res.Phi[MID_LAYER, 0, r] > 0.5
        assert res.Phi[SPREAD_LAYER, 1, r] > 0.5
        assert np.allclose(np.nansum(res.Phi[:, 0, r]), 1.0)
    # volume is carried by no layer: low raw intensity everywhere
    assert np.nanmax(res.phi[:, 2, :]) < 0.2
    assert np.all(res.specialisation > 0.3)


def test_regimes_from_training_quantiles():
    vol = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    th = regime_thresholds(vol, np.arange(4), 2)
    assert th.tolist() == [2.5]
    assert assign_regimes(vol, th).tolist() == [0, 0, 1, 1, 1, -1]


def test_normalise_handles_zero_and_nan():
    phi = np.zeros((4, 2, 1))
    phi[1, 0, 0] = 0.3
    phi[3, 0, 0] = 0.1
    phi[:, 1, 0] = 0.0
    Phi, info = normalise(phi)
    assert np.allclose(Phi[:, 0, 0], [0, 0.75, 0, 0.25])
    assert np.allclose(Phi[:, 1, 0], 0.25) and info.tolist() == [[True], [False]]
    phi[0, 1, 0] = np.nan
    Phi, info = normalise(phi)
    assert np.isnan(Phi[:, 1, 0]).all()


def test_peak_band_and_specialisation():
    Phi = np.zeros((6, 2, 1))
    Phi[[3, 4], 0, 0] = 0.5
    Phi[[0, 1], 1, 0] = 0.5
    s, e = peak_band(Phi, 2)
    assert s[:, 0].tolist() == [3, 0] and e[:, 0].tolist() == [5, 2]
    assert specialisation_index(Phi)[0] == pytest.approx(1.0)
    same = np.repeat(Phi[:, :1], 2, axis=1)
    assert specialisation_index(same)[0] == pytest.approx(0.0)


def test_excitation_peaks_where_the_field_is_read(synthetic):
    s = synthetic
    X = s.X[:64]

    def hidden(x):
        return fake_hidden(x, seed=11)

    perturb = field_perturbation({0: [0], 1: [1], 2: [2]}, 1.0, np.ones(X.shape[2]))
    E = excitation(hidden, X, perturb, 3, np.zeros(64, dtype=int), n_regimes=1, seed=0)
    En, _ = normalise(E)
    assert int(np.argmax(En[:, 0, 0])) == MID_LAYER
    assert int(np.argmax(En[:, 1, 0])) == SPREAD_LAYER


def test_result_roundtrip_and_rendering(synthetic, tmp_path):
    res = _run(synthetic)
    path = res.save(tmp_path / "probe.json")
    back = ProbeResult.load(path)
    assert np.allclose(back.Phi, res.Phi, equal_nan=True)
    assert back.peak_layers(1, 0) == res.peak_layers(1, 0)
    buf = io.StringIO()
    render_heatmaps(res, Console(file=buf, width=100, color_system="truecolor", force_terminal=True))
    out = buf.getvalue()
    assert "high-vol" in out and "\x1b[" in out
    png = plot_heatmaps(res, tmp_path / "probe.png")
    assert png.stat().st_size > 1000
