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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def speech_server():
    """`tts serve` of the bundled es_base in a thread on a free loopback port, once per session:
    (base URL, SpeechService). A small queue (2) and input limit (400) so tests can reach them."""
    pytest.importorskip("fastapi", reason="tts serve needs the [serve] extra (fastapi, uvicorn)")
    uvicorn = pytest.importorskip("uvicorn", reason="tts serve needs the [serve] extra (fastapi, uvicorn)")
    import threading
    import time

    from tts_cli.serve.app import create_app
    from tts_cli.serve.server import build_service
    from tts_cli.serve.service import Settings

    service = build_service(voice="es_base", settings=Settings(max_queue=2, max_chars=400), threads=1, warm_up=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(timeout=10)
    service.close()
