"""Scoring metrics: text error rates, mel-cepstral distortion with DTW, F0 and duration errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import tone
from tts_cli.evaluation.metrics import (cer, dtw_path, duration_mae_frames, duration_stats, edit_distance, f0_level_range,
                             f0_rmse_cents, fold_accents, mcd_dtw, mcd_dtw_mels, mel_cepstrum, normalize_for_scoring, summarize,
                             text_scores, wer)

SR = 22050


# ----------------------------------------------------------------------------- text

def test_edit_distance_hand_examples():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("hola mundo".split(), "hola hola mundo".split()) == 1


def test_normalization_drops_punctuation_and_spells_digits():
    assert normalize_for_scoring("¡Hola, Mundo!") == "hola mundo"
    assert normalize_for_scoring("¿Tienes 25 años?") == "tienes veinticinco años"
    assert normalize_for_scoring("  «Sí»   —dijo…  ") == "sí dijo"


def test_cer_accents_punctuation_digits():
    # "dónde está" (10 chars) vs "donde esta": two substituted letters
    assert cer("¿Dónde está?", "donde esta") == pytest.approx(2 / 10)
    assert cer("¿Dónde está?", "donde esta", fold=True) == 0.0
    # digits are spelled out on both sides before comparing
    assert cer("Tengo 3 gatos.", "tengo tres gatos") == 0.0
    assert cer("Tengo 3 gatos.", "Tengo 3 gatos") == 0.0
    # "el perro corre" (14 chars) vs "el perro come": r->m and one r deleted
    assert cer("El perro corre.", "el perro come") == pytest.approx(2 / 14)


def test_accent_folding_keeps_enye():
    assert fold_accents("Qué pingüino ñandú Ñu") == "Que pinguino ñandu Ñu"
    # año and ano are different words: folding must not forgive that
    assert cer("año", "ano", fold=True) == pytest.approx(1 / 3)


def test_wer_hand_examples():
    assert wer("El perro corre.", "el perro come") == pytest.approx(1 / 3)
    assert wer("hola mundo", "hola hola mundo") == pytest.approx(1 / 2)
    assert wer("¿Qué hora es?", "que hora es") == pytest.approx(1 / 3)  # accents count in WER
    assert wer("Son las 2.", "son las dos") == 0.0


def test_empty_reference():
    assert cer("", "") == 0.0 and cer("", "algo") == 1.0
    assert wer("¿?", "") == 0.0


def test_text_scores_report_what_was_compared():
    s = text_scores("¡Está aquí!", "esta aqui")
    assert s["ref_normalized"] == "está aquí" and s["hyp_normalized"] == "esta aqui"
    assert s["cer"] == pytest.approx(2 / 9) and s["cer_folded"] == 0.0 and s["wer"] == 1.0


# ----------------------------------------------------------------------------- MCD

def _voice(seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    return tone(SR, seconds, 180.0, lead_s=0.0) + 0.01 * rng.standard_normal(int(SR * seconds)).astype(np.float32)


def test_mel_cepstrum_recovers_known_coefficients():
    n = 80
    k = np.arange(n) + 0.5
    log_mel = (1.5 + 2 * 0.3 * np.cos(np.pi * 2 * k / n) - 2 * 0.1 * np.cos(np.pi * 5 * k / n))[:, None]
    c = mel_cepstrum(log_mel, order=24)[0]
    expected = np.zeros(24)
    expected[1], expected[4] = 0.3, -0.1  # c_2 and c_5 (c_0 is excluded)
    np.testing.assert_allclose(c, expected, atol=1e-12)


def test_mcd_of_a_signal_with_itself_is_zero_and_grows_with_noise():
    x = _voice()
    assert mcd_dtw(x, x, SR) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    scores = [mcd_dtw(x, x + s * noise, SR) for s in (0.003, 0.03, 0.3)]
    assert 0.0 < scores[0] < scores[1] < scores[2]


def test_mcd_ignores_gain_and_time_stretch():
    x = _voice()
    # a gain only moves c0, which MCD excludes
    assert mcd_dtw(x, 0.5 * x, SR) < 0.05
    # DTW pairs every repeated frame with its original
    rng = np.random.default_rng(2)
    mel = rng.normal(-4, 1, size=(80, 50))
    score, path = mcd_dtw_mels(mel, np.repeat(mel, 2, axis=1))
    assert score == pytest.approx(0.0, abs=1e-6)
    assert len(path) == 100 and tuple(path[-1]) == (49, 99)


def test_dtw_matches_brute_force():
    rng = np.random.default_rng(3)

    def brute(c):
        n, m = c.shape
        acc = np.full((n + 1, m + 1), np.inf)
        acc[0, 0] = 0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                acc[i, j] = c[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
        return acc[n, m]

    for _ in range(30):
        c = rng.random((int(rng.integers(1, 9)), int(rng.integers(1, 9))))
        path, total = dtw_path(c)
        assert total == pytest.approx(brute(c))
        assert c[path[:, 0], path[:, 1]].sum() == pytest.approx(total)
        steps = np.diff(path, axis=0)
        assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(1) >= 1)


# ----------------------------------------------------------------------------- F0

def test_f0_rmse_of_a_100_cent_shift_is_100():
    ref = np.full(100, 200.0)
    syn = ref * 2 ** (100 / 1200)
    r = f0_rmse_cents(ref, syn)
    assert r["rmse_cents"] == pytest.approx(100.0)
    assert r["mean_offset_cents"] == pytest.approx(100.0)
    assert r["voicing_error"] == 0.0 and r["both_voiced"] == 100


def test_f0_rmse_uses_frames_both_voice_and_counts_voicing_errors():
    ref = np.array([0, 0, 200, 200, 200, 200, 0, 0], float)
    syn = np.array([0, 150, 400, 200, 200, 0, 0, 0], float)
    r = f0_rmse_cents(ref, syn)
    assert r["both_voiced"] == 3
    assert r["rmse_cents"] == pytest.approx(math.sqrt(1200 ** 2 / 3))
    assert r["voicing_error"] == pytest.approx(2 / 8)
    # nothing voiced in both: RMSE undefined, not zero
    assert math.isnan(f0_rmse_cents(np.zeros(5), np.full(5, 100.0))["rmse_cents"])


def test_f0_rmse_pairs_frames_by_path_or_stretching():
    ref = np.array([100.0, 200.0, 300.0])
    syn = np.array([100.0, 100.0, 200.0, 200.0, 300.0, 300.0])
    assert f0_rmse_cents(ref, syn)["rmse_cents"] == pytest.approx(0.0)  # linear stretch
    path = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [2, 4], [2, 5]])
    r = f0_rmse_cents(ref, syn, path=path)
    assert r["rmse_cents"] == pytest.approx(0.0) and r["pairs"] == 6


def test_f0_rmse_of_real_tones_a_semitone_apart():
    from tts_cli.f0 import extract_f0

    a = extract_f0(tone(SR, 1.0, 200.0), SR)
    b = extract_f0(tone(SR, 1.0, 200.0 * 2 ** (1 / 12)), SR)
    r = f0_rmse_cents(a, b)
    assert r["both_voiced"] > 50
    assert r["rmse_cents"] == pytest.approx(100.0, abs=5.0)


# ----------------------------------------------------------------------------- durations, summaries

def test_duration_stats_and_mae():
    s = duration_stats(2.0, 2.5, n_units=20)
    assert s["duration_diff_s"] == pytest.approx(0.5) and s["duration_ratio"] == pytest.approx(1.25)
    assert s["speaking_rate_diff_pct"] == pytest.approx(-20.0)  # slower than the reference
    assert s["ref_rate"] == pytest.approx(10.0) and s["syn_rate"] == pytest.approx(8.0)
    assert duration_mae_frames([2, 3, 4], [3, 3, 2]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        duration_mae_frames([1, 2], [1, 2, 3])


def test_summarize_skips_missing_values():
    s = summarize([1.0, float("nan"), None, 3.0, 8.0])
    assert s == {"mean": 4.0, "median": 3.0, "n": 3}
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mean"])


def test_gross_pitch_errors_are_counted_apart():
    ref = np.full(10, 100.0)
    syn = ref * 2 ** (10 / 1200)  # 10 cents sharp ...
    syn[:2] = 200.0  # ... except two octave errors
    r = f0_rmse_cents(ref, syn)
    assert r["gross_error_rate"] == pytest.approx(0.2)
    assert r["rmse_cents_fine"] == pytest.approx(10.0)
    assert r["rmse_cents"] == pytest.approx(math.sqrt((2 * 1200 ** 2 + 8 * 10 ** 2) / 10))


def test_f0_level_and_range_ignore_unvoiced_frames_and_single_outliers():
    # a glide from 100 to 200 Hz (one octave) with unvoiced gaps and one octave error
    f0 = np.geomspace(100.0, 200.0, 201)
    f0[::10] = 0.0
    f0[50] = 800.0
    r = f0_level_range(f0)
    assert r["median_hz"] == pytest.approx(np.sqrt(100 * 200), rel=0.02)
    assert r["range_st"] == pytest.approx(0.9 * 12, abs=0.3)  # 5..95 % of a 12-semitone glide
    assert math.isnan(f0_level_range(np.zeros(50))["range_st"])
