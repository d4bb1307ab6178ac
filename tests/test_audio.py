"""Audio loading edge cases, silence trimming, and our torch log-mel against librosa's."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tts_cli.errors import AudioError
from tts_cli.audio import load_audio, mel_filterbank, mel_spectrogram, num_frames, peak_normalize, save_wav, trim_silence
from tts_cli.config import AudioConfig

SR = 22050


def tone(freq=440.0, seconds=1.0, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(wav, sr):
    spec = np.abs(np.fft.rfft(wav))
    return np.argmax(spec) * sr / len(wav)


# ----------------------------------------------------------------------------- load_audio

def test_stereo_is_mixed_down_to_mono(tmp_path):
    left, right = tone(amp=0.6), np.zeros(SR, np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    wav = load_audio(path, SR)
    assert wav.ndim == 1 and wav.dtype == np.float32 and len(wav) == SR
    np.testing.assert_allclose(wav, left / 2, atol=1e-6)


def test_44k_is_resampled_to_22k(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(path, tone(1000.0, 1.0, sr=44100), 44100, subtype="PCM_16")
    wav = load_audio(path, SR)
    assert abs(len(wav) - SR) <= 1
    assert abs(dominant_freq(wav, SR) - 1000.0) < 2.0
    assert np.max(np.abs(wav)) == pytest.approx(0.5, abs=0.02)


def test_16k_float_is_upsampled(tmp_path):
    path = tmp_path / "f.wav"
    sf.write(path, tone(300.0, 0.5, sr=16000), 16000, subtype="FLOAT")
    wav = load_audio(path, SR)
    assert abs(len(wav) - SR // 2) <= 1
    assert abs(dominant_freq(wav, SR) - 300.0) < 3.0


def test_float_above_full_scale_is_scaled_into_range(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, tone(amp=3.0), SR, subtype="FLOAT")
    wav = load_audio(path, SR)
    assert np.max(np.abs(wav)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32"])
def test_other_pcm_widths(tmp_path, subtype):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, tone(amp=0.5), SR, subtype=subtype)
    wav = load_audio(path, SR)
    assert len(wav) == SR
    np.testing.assert_allclose(wav, tone(amp=0.5), atol=1e-2 if subtype == "PCM_U8" else 1e-4)


def test_flac_reads(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, tone(), SR)
    np.testing.assert_allclose(load_audio(path, SR), tone(), atol=1e-4)


def test_corrupt_file(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(b"this is not audio at all" * 50)
    with pytest.raises(AudioError, match="unreadable audio"):
        load_audio(path, SR)


def test_truncated_wav_is_detected(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(), SR, subtype="PCM_16")
    data = good.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(cut, SR)
    assert len(load_audio(good, SR)) == SR  # the intact file is fine


def test_truncated_flac_is_detected(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, tone(), SR)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated|unreadable"):
        load_audio(cut, SR)


def test_empty_files(tmp_path):
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    with pytest.raises(AudioError, match="empty audio"):
        load_audio(zero, SR)
    no_samples = tmp_path / "nosamples.wav"
    sf.write(no_samples, np.zeros(0, np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty audio"):
        load_audio(no_samples, SR)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing file"):
        load_audio(tmp_path / "nope.wav", SR)


def test_all_silent_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(SR, np.float32), SR, subtype="PCM_16")
    wav = load_audio(path, SR)
    with pytest.raises(AudioError, match="all-silent audio"):
        trim_silence(wav, SR)


# ----------------------------------------------------------------------------- trim / normalise

def test_trim_returns_start_offset_of_tone_in_silence():
    lead, body, tail = int(0.5 * SR), int(0.4 * SR), int(0.3 * SR)
    rng = np.random.default_rng(0)
    wav = np.concatenate([np.zeros(lead), tone(seconds=body / SR), np.zeros(tail)]).astype(np.float32)
    wav += rng.normal(0, 1e-5, wav.size).astype(np.float32)  # a realistic noise floor
    trimmed, start = trim_silence(wav, SR, top_db=40, margin_s=0.05)
    margin = int(0.05 * SR)
    # the tone starts at `lead`; frames are 256 samples so the edge is found within a frame
    assert abs(start - (lead - margin)) <= 512
    assert start < lead and start + len(trimmed) > lead + body
    assert abs(len(trimmed) - (body + 2 * margin)) <= 1024
    np.testing.assert_array_equal(trimmed, wav[start:start + len(trimmed)])


def test_trim_keeps_audio_without_silence():
    wav = tone(seconds=0.5)
    trimmed, start = trim_silence(wav, SR)
    assert start == 0 and len(trimmed) == len(wav)


def test_peak_normalize():
    out = peak_normalize(tone(amp=0.2), 0.95)
    assert np.max(np.abs(out)) == pytest.approx(0.95, abs=1e-6)
    silent = np.zeros(10, np.float32)
    np.testing.assert_array_equal(peak_normalize(silent), silent)


def test_save_wav_roundtrip(tmp_path):
    path = save_wav(tmp_path / "sub" / "x.wav", torch.from_numpy(tone()), SR)
    info = sf.info(path)
    assert info.samplerate == SR and info.subtype == "PCM_16" and info.frames == SR
    np.testing.assert_allclose(load_audio(path, SR), tone(), atol=1e-4)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- mel

def librosa_log_mel(wav, cfg):
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wav, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
        window="hann", center=True, pad_mode="reflect", power=1.0, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney",
    )
    return np.log(np.maximum(mel, cfg.log_clamp))


def test_filterbank_matches_librosa():
    import librosa

    ours = mel_filterbank(SR, 1024, 80, 0.0, 8000.0)
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("n", [SR + 77, 4001])
def test_mel_matches_librosa(n):
    cfg = AudioConfig()
    rng = np.random.default_rng(1)
    wav = (0.3 * tone(seconds=n / SR) + rng.normal(0, 0.05, n)).astype(np.float32)[:n]
    ours = mel_spectrogram(wav, cfg)
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
    ref = librosa_log_mel(wav, cfg)
    assert ours.shape == ref.shape == (80, num_frames(n, cfg.hop_length))
    assert np.max(np.abs(ours.numpy() - ref)) < 1e-3


def test_mel_other_settings_match_librosa():
    cfg = AudioConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, n_mels=64, fmin=50.0, fmax=7600.0)
    wav = np.random.default_rng(2).normal(0, 0.1, 8001).astype(np.float32)
    ours = mel_spectrogram(wav, cfg).numpy()
    assert np.max(np.abs(ours - librosa_log_mel(wav, cfg))) < 1e-3


def test_mel_of_silence_is_log_clamp():
    cfg = AudioConfig()
    mel = mel_spectrogram(np.zeros(1000, np.float32), cfg)
    assert torch.allclose(mel, torch.full_like(mel, float(np.log(cfg.log_clamp))))


@pytest.mark.parametrize("n", [1, 255, 257, 511, 513, 12345])
def test_frame_count_odd_lengths(n):
    cfg = AudioConfig()
    mel = mel_spectrogram(np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32), cfg)
    assert mel.shape == (80, 1 + n // 256) and mel.shape[1] == num_frames(n, 256)
    assert torch.isfinite(mel).all()


def test_batched_equals_single():
    cfg = AudioConfig()
    rng = np.random.default_rng(3)
    batch = torch.from_numpy(rng.normal(0, 0.1, (3, 5000)).astype(np.float32))
    out = mel_spectrogram(batch, cfg)
    assert out.shape == (3, 80, num_frames(5000, 256))
    for i in range(3):
        torch.testing.assert_close(out[i], mel_spectrogram(batch[i], cfg), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], mel_spectrogram(batch[1].numpy(), cfg), atol=1e-5, rtol=1e-5)


def test_import_does_not_pull_librosa():
    code = "import sys, tts_cli.audio; sys.exit(int(any(m in sys.modules for m in ('librosa', 'soundfile'))))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_mel_works_without_librosa():
    """The GPU box has no librosa: computing a mel must not need it."""
    code = (
        "import sys; sys.modules['librosa'] = None\n"
        "import numpy as np\n"
        "from tts_cli.audio import mel_spectrogram\nfrom tts_cli.config import AudioConfig\n"
        "m = mel_spectrogram(np.ones(3000, dtype=np.float32) * 0.1, AudioConfig()); assert m.shape == (80, 12)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
