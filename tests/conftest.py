"""Shared fixtures: tiny corpora the tests make themselves (no downloads)."""
from __future__ import annotations

import os

import numpy as np
import pytest

# keep the 2-core machine responsive when several test processes run
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tone(sr: int = 22050, seconds: float = 1.0, f0: float = 220.0, lead_s: float = 0.2, amp: float = 0.5) -> np.ndarray:
    """A harmonic tone with `lead_s` of silence on both sides (speech-like enough for the audio path)."""
    t = np.arange(int(sr * seconds)) / sr
    x = sum(amp / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 5)).astype(np.float32)
    pad = np.zeros(int(sr * lead_s), np.float32)
    return np.concatenate([pad, x, pad])


def write_ljspeech(root, rows, sr: int = 22050, subtype: str = "PCM_16"):
    """rows: (id, text, audio ndarray | None | bytes). None = no file, bytes = raw file content."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    (root / "wavs").mkdir(exist_ok=True)
    lines = []
    for uid, text, audio in rows:
        lines.append(f"{uid}|{text}|{text}")
        path = root / "wavs" / f"{uid}.wav"
        if isinstance(audio, bytes):
            path.write_bytes(audio)
        elif audio is not None:
            sf.write(path, audio, sr, subtype=subtype)
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """Six sentences of the built-in sample corpus, spoken by espeak-ng (with truth.json)."""
    from tts_cli.sample_corpus import build_sample_corpus

    out = tmp_path_factory.mktemp("sample_corpus")
    build_sample_corpus(out, limit=6, progress=False)
    return out


@pytest.fixture(scope="session")
def sample_workspace(sample_corpus, tmp_path_factory):
    """`tts preprocess` of the six-sentence sample corpus. Read-only for tests: copy it to modify."""
    from tts_cli.stages.preprocess import preprocess

    work = tmp_path_factory.mktemp("sample_work")
    preprocess(sample_corpus, work, workers=1, progress=False)
    return work
