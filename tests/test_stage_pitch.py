"""`tts extract-pitch` stage on tiny fabricated workspaces (tones instead of speech)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tts_cli.errors import ConfigError
from tts_cli.f0 import frame_energy
from tts_cli.stages.pitch import extract_pitch
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_jsonl, atomic_write_text, read_jsonl

SR = 22050
HOP = 256


def _tone(f0: float, seconds: float, seed: int) -> np.ndarray:
    """Harmonic tone (with a little vibrato) between 0.15 s silences."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    f = f0 * (1 + 0.02 * np.sin(2 * np.pi * 3 * np.arange(n) / SR))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(0.3 / k * np.sin(k * ph) for k in range(1, 5))
    sil = np.zeros(int(0.15 * SR))
    wav = np.concatenate([sil, x, sil]) + 1e-4 * rng.standard_normal(n + 2 * len(sil))
    return wav.astype(np.float32)


def make_workspace(root, utts):
    """utts: list of (id, speaker, wav). Writes wavs/, mels/ (tts_cli.audio), manifest, config."""
    import soundfile as sf

    from tts_cli.audio import mel_spectrogram
    from tts_cli.config import AudioConfig

    ws = Workspace(root)
    rows = []
    for uid, spk, wav in utts:
        (root / "wavs").mkdir(parents=True, exist_ok=True)
        sf.write(ws.wav_path(uid), wav, SR, subtype="PCM_16")
        mel = mel_spectrogram(wav, AudioConfig()).numpy()
        atomic_save_npy(ws.mel_path(uid), mel)
        rows.append({"id": uid, "speaker": spk, "text": "a", "normalized": "a", "phonemes": "a", "symbols": ["a"],
                     "audio": f"wavs/{uid}.wav", "n_frames": int(mel.shape[1]), "duration_s": len(wav) / SR,
                     "trim_start_s": 0.0, "split": "train"})
    atomic_write_jsonl(ws.manifest, rows)
    atomic_write_text(ws.config, "audio:\n  sample_rate: 22050\n  hop_length: 256\n")
    return ws


@pytest.fixture()
def two_speakers(tmp_path):
    utts = [(f"lo{i}", "low", _tone(120.0, 0.6 + 0.1 * i, i)) for i in range(2)]
    utts += [(f"hi{i}", "high", _tone(220.0, 0.5 + 0.1 * i, 10 + i)) for i in range(2)]
    return make_workspace(tmp_path / "work", utts)


def test_two_speakers_stats_and_files(two_speakers):
    ws = two_speakers
    summary = extract_pitch(ws.root, workers=2, progress=False)
    assert summary["processed"] == 4 and summary["failed"] == 0
    stats = json.loads(ws.pitch_stats.read_text())
    assert set(stats["speakers"]) == {"low", "high"}
    assert stats["speakers"]["low"]["mean"] == pytest.approx(120.0, rel=0.03)
    assert stats["speakers"]["high"]["mean"] == pytest.approx(220.0, rel=0.03)
    # the vibrato (±2 %) gives a small but non-zero spread
    assert 0 < stats["speakers"]["low"]["std"] < 10
    assert stats["speakers"]["low"]["n_utterances"] == 2
    assert 0.4 < stats["speakers"]["high"]["voiced_share"] < 0.9  # tone voiced, silences not
    corpus = stats["corpus"]
    assert stats["mean"] == corpus["mean"] and 120 < corpus["mean"] < 220
    assert corpus["std"] > 40  # two speakers far apart
    for row in ws.load_manifest():
        f0 = np.load(ws.pitch_path(row["id"]))
        energy = np.load(ws.energy_path(row["id"]))
        assert f0.dtype == np.float32 and f0.shape == (row["n_frames"],)
        np.testing.assert_allclose(energy, frame_energy(np.load(ws.mel_path(row["id"]))))
    assert read_jsonl(ws.pitch_report) == []


def test_incremental_rerun_skips_and_changes_redo(two_speakers):
    ws = two_speakers
    fixed = {"pitch": {"auto_range": False}}  # with auto_range a changed wav may move its speaker's range
    extract_pitch(ws.root, workers=1, config=fixed, progress=False)
    mtime = ws.pitch_path("lo0").stat().st_mtime_ns
    again = extract_pitch(ws.root, workers=1, config=fixed, progress=False)
    assert again["processed"] == 0 and again["skipped"] == 4
    assert ws.pitch_path("lo0").stat().st_mtime_ns == mtime
    assert again["speakers"]["low"]["mean"] == pytest.approx(120.0, rel=0.03)  # stats without recompute
    # a changed input is redone, alone
    import soundfile as sf

    sf.write(ws.wav_path("hi1"), _tone(230.0, 0.6, 11), SR, subtype="PCM_16")
    os.utime(ws.wav_path("hi1"), ns=(1, 1))
    one = extract_pitch(ws.root, workers=1, config=fixed, progress=False)
    assert one["processed"] == 1 and one["skipped"] == 3
    # changed settings redo everything
    other = extract_pitch(ws.root, workers=1, fmin=80.0, fmax=600.0, config=fixed, progress=False)
    assert other["processed"] == 4
    settings = json.loads((ws.dir("pitch") / "_settings.json").read_text())["settings"]
    assert settings["fmin"] == 80.0 and settings["fmax"] == 600.0


def test_bad_wav_reported_rest_processed(tmp_path):
    utts = [("good", "default", _tone(150.0, 0.5, 1)), ("bad", "default", _tone(150.0, 0.5, 2)),
            ("quiet", "default", np.zeros(int(0.5 * SR), np.float32))]
    ws = make_workspace(tmp_path / "work", utts)
    ws.wav_path("bad").write_bytes(b"RIFF\x00\x00garbage, not audio")
    summary = extract_pitch(ws.root, workers=2, progress=False)
    assert summary["processed"] == 2 and summary["failed"] == 1 and summary["no_voiced"] == 1
    assert ws.pitch_path("good").exists() and not ws.pitch_path("bad").exists()
    report = {r["id"]: r for r in read_jsonl(ws.pitch_report)}
    assert report["bad"]["issue"] == "unreadable_wav" and "bad.wav" in report["bad"]["reason"]
    assert report["quiet"]["issue"] == "no_voiced_frames"
    assert "good" not in report


def test_config_section_and_validation(two_speakers):
    ws = two_speakers
    with pytest.raises(ConfigError, match="unknown pitch setting"):
        extract_pitch(ws.root, config={"pitch": {"hop": 3}}, progress=False)
    with pytest.raises(ConfigError, match="unknown pitch method"):
        extract_pitch(ws.root, method="nope", progress=False)
    s = extract_pitch(ws.root, workers=1, config={"pitch": {"method": "dio", "auto_range": True}}, progress=False)
    assert s["method"] == "dio"
    stats = json.loads(ws.pitch_stats.read_text())
    # the first pass narrowed each speaker's range around its own pitch
    assert stats["speakers"]["low"]["fmax"] < 400 and stats["speakers"]["high"]["fmin"] > 100
