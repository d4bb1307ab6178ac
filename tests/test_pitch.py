"""F0 extractors, energy, per-symbol averaging and pitch normalisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tts_cli.errors import ConfigError
from tts_cli.f0 import DEFAULT_METHOD, extend_voicing, extract_f0, frame_energy
from tts_cli.prosody import average_per_symbol, average_per_symbol_np, normalize_pitch

SR = 22050
HOP = 256


def glide(sr=SR, seconds=1.5, f_start=100.0, f_end=300.0, lead_s=0.25):
    """Harmonic tone whose F0 glides exponentially from f_start to f_end, silence around it."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f = f_start * (f_end / f_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.4 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    pad = np.zeros(int(sr * lead_s), np.float32)
    times = (np.arange(1 + (n + 2 * len(pad)) // HOP) * HOP / sr) - lead_s
    truth = np.where((times >= 0) & (times < seconds),
                     f_start * (f_end / f_start) ** (np.clip(times, 0, seconds) / seconds), 0.0)
    return np.concatenate([pad, x, pad]), truth


@pytest.mark.parametrize("method", sorted({DEFAULT_METHOD, "pyin"}))
def test_glide_recovered_within_2_percent(method):
    wav, truth = glide()
    f0 = extract_f0(wav, SR, method)
    assert f0.dtype == np.float32 and len(f0) == len(truth)
    inner = truth > 0
    # frames well inside the tone (window fully on the tone) must be voiced ...
    core = np.convolve(inner, np.ones(9), "same") == 9
    assert np.mean(f0[core] > 0) > 0.95
    both = (f0 > 0) & inner
    rel = np.abs(f0[both] / truth[both] - 1)
    assert np.median(rel) < 0.02 and np.mean(rel < 0.02) > 0.9
    # ... and the silent lead-in is unvoiced
    silent = np.convolve(~inner, np.ones(9), "same") == 9
    assert np.mean(f0[silent] == 0) > 0.9


@pytest.mark.parametrize("method", sorted({DEFAULT_METHOD, "dio", "yin"}))
def test_white_noise_mostly_unvoiced(method):
    noise = np.random.default_rng(0).normal(0, 0.3, SR).astype(np.float32)
    f0 = extract_f0(noise, SR, method)
    assert np.mean(f0 > 0) < 0.2


@pytest.mark.parametrize("sr", [16000, 22050, 24000, 44100])
@pytest.mark.parametrize("method", sorted({DEFAULT_METHOD, "dio", "yin"}))
def test_length_matches_mel_frames(sr, method):
    rng = np.random.default_rng(sr)
    for n in (sr // 2 + 1, sr // 3 + 77, 5 * HOP):  # odd lengths and an exact multiple of hop
        t = np.arange(n) / sr
        wav = (0.5 * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)
        f0 = extract_f0(wav, sr, method)
        assert len(f0) == 1 + n // HOP
        if n >= sr // 4:  # long enough for every method to find the tone
            assert np.median(f0[f0 > 0]) == pytest.approx(180, rel=0.02)


def test_pyin_length_and_explicit_n_frames():
    wav = glide(seconds=0.5)[0][: 22050 // 2 + 101]
    assert len(extract_f0(wav, SR, "pyin")) == 1 + len(wav) // HOP
    assert len(extract_f0(wav, SR, DEFAULT_METHOD, n_frames=7)) == 7
    assert len(extract_f0(wav, SR, DEFAULT_METHOD, n_frames=1000)) == 1000
    assert np.all(extract_f0(np.zeros(300, np.float32), SR, DEFAULT_METHOD) == 0)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown pitch method"):
        extract_f0(np.zeros(1000), SR, "crepe")
    with pytest.raises(ConfigError, match="fmin"):
        extract_f0(np.zeros(1000), SR, DEFAULT_METHOD, fmin=500, fmax=100)


def test_extend_voicing():
    f = np.array([0, 0, 100, 110, 0, 0, 0, 120, 0], float)
    out = extend_voicing(f, onset=1, offset=1)
    np.testing.assert_array_equal(out, [0, 100, 100, 110, 110, 0, 120, 120, 120])


def test_frame_energy_is_l2_norm_of_log_mel_frame():
    mel = np.array([[3.0, 0.0, -11.5], [4.0, 1.0, -11.5]], np.float32)
    np.testing.assert_allclose(frame_energy(mel), [5.0, 1.0, np.hypot(11.5, 11.5)], rtol=1e-6)


def test_average_per_symbol_hand_computed_padded_batch():
    # utterance 0: 7 frames, symbols of 2, 0, 3, 2 frames; frame 3 unvoiced (0)
    # utterance 1: 4 frames + 3 padding frames; 2 symbols + 2 padding symbols
    values = torch.tensor([
        [100.0, 200.0, 150.0, 0.0, 300.0, 120.0, 0.0],
        [0.0, 0.0, 80.0, 90.0, 0.0, 0.0, 0.0],
    ])
    durations = torch.tensor([[2, 0, 3, 2], [2, 2, 0, 0]])
    expected = torch.tensor([
        [150.0, 0.0, (150.0 + 300.0) / 2, 120.0],  # zero duration -> 0; unvoiced frame ignored
        [0.0, 85.0, 0.0, 0.0],  # all-unvoiced symbol -> 0; padding symbols -> 0
    ])
    out = average_per_symbol(values, durations)
    assert out.shape == (2, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    # channels ([B, C, T]) give the same per channel
    out3 = average_per_symbol(torch.stack([values, 2 * values], 1), durations)
    torch.testing.assert_close(out3, torch.stack([expected, 2 * expected], 1))
    # numpy wrapper, single utterance
    np.testing.assert_allclose(average_per_symbol_np(values[0].numpy(), [2, 0, 3, 2]), expected[0].numpy())


def test_average_per_symbol_matches_loop_on_random_batch():
    rng = np.random.default_rng(1)
    B, N = 3, 9
    durs = rng.integers(0, 6, size=(B, N))
    T = int(durs.sum(1).max()) + 2
    vals = rng.uniform(80, 300, size=(B, T)) * (rng.random((B, T)) > 0.3)
    out = average_per_symbol(torch.tensor(vals, dtype=torch.float32), torch.tensor(durs)).numpy()
    for b in range(B):
        pos = 0
        for n in range(N):
            seg = vals[b, pos:pos + durs[b, n]]
            nz = seg[seg != 0]
            assert out[b, n] == pytest.approx(nz.mean() if len(nz) else 0.0, rel=1e-5)
            pos += durs[b, n]


def test_average_per_symbol_gradient_flows():
    values = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    average_per_symbol(values, torch.tensor([[1, 2]])).sum().backward()
    torch.testing.assert_close(values.grad, torch.tensor([[1.0, 0.5, 0.5]]))


def test_normalize_pitch_keeps_zeros():
    p = np.array([0.0, 100.0, 200.0], np.float32)
    np.testing.assert_allclose(normalize_pitch(p, 150.0, 50.0), [0.0, -1.0, 1.0])
    t = normalize_pitch(torch.tensor([[0.0, 120.0], [0.0, 300.0]]), torch.tensor([[100.0], [200.0]]),
                        torch.tensor([[10.0], [50.0]]))
    torch.testing.assert_close(t, torch.tensor([[0.0, 2.0], [0.0, 2.0]]))
