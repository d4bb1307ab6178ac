"""The voice shipped in src/tts_cli/resources/voices/es_base: present, small, licensed, safe to load, and it speaks
both of its speakers with their own pitch level with no model argument at all."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tts_cli.cli import app
from tts_cli.inference.voices import default_voice, get_voice, list_voices

NAME = "es_base"


@pytest.fixture(autouse=True)
def _only_repo_voices(monkeypatch):
    monkeypatch.delenv("TTS_VOICES_DIR", raising=False)


def test_the_bundled_voice_is_listed_small_licensed_and_the_default():
    voice = get_voice(NAME)
    assert NAME in [v.name for v in list_voices()]
    assert default_voice().name == NAME
    assert voice.language == "es" and voice.speakers == ["ef_dora", "em_alex"]
    assert voice.licence == "Apache-2.0"
    assert voice.size_bytes <= 40 * 2 ** 20  # the budget for acoustic model + vocoder
    for notice in ("LICENSE", "NOTICE"):
        assert (voice.path / notice).is_file()
    assert "Kokoro" in (voice.path / "NOTICE").read_text() and "Kokoro" in voice.metadata["attribution"]
    meta = json.loads((voice.path / "voice.json").read_text())
    assert meta["training"]["steps"] > 0


def test_the_bundled_checkpoint_loads_without_pickled_code():
    ckpt = torch.load(get_voice(NAME).acoustic_path, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "fastpitch" and "optimizer" not in ckpt
    assert set(ckpt["speakers"]) == {"ef_dora", "em_alex"}


def _median_f0(path) -> float:
    from tts_cli.audio import load_audio
    from tts_cli.f0 import extract_f0

    wav = load_audio(path, 22050)
    f0 = extract_f0(wav, 22050, "yin", 60.0, 500.0)
    return float(np.median(f0[f0 > 0]))


def test_synthesize_with_no_model_speaks_each_speaker_at_its_own_pitch(tmp_path):
    runner = CliRunner()
    f0 = {}
    for speaker in ("ef_dora", "em_alex"):
        out = tmp_path / f"{speaker}.wav"
        res = runner.invoke(app, ["synthesize", "Hola, ¿qué tal? Buenos días a todos.", "-o", str(out),
                                  "-s", speaker])
        assert res.exit_code == 0, res.output
        from tts_cli.audio import load_audio

        wav = load_audio(out, 22050)
        assert 1.0 < len(wav) / 22050 < 5.0  # a short sentence, not silence and not a runaway
        assert np.sqrt(np.mean(wav ** 2)) > 0.01
        f0[speaker] = _median_f0(out)
    # teacher voices: ef_dora ~175 Hz, em_alex ~130 Hz; the model must keep them apart
    assert f0["ef_dora"] > 1.15 * f0["em_alex"], f0


def test_the_english_voice_is_bundled_safe_and_what_english_workspaces_start_from(tmp_path):
    """en_base: es_base fine-tuned on Kokoro American English (`make voice-en`); `bundled` and
    align's `auto` resolve to it (acoustic model and aligner) for an English workspace only."""
    from tts_cli.inference.voices import resolve_init_from
    from tts_cli.stages.align_training import resolve_init_from as aligner_init

    voice = get_voice("en_base")
    assert voice.language == "en-us" and voice.speakers == ["af_heart", "am_michael"]
    assert voice.licence == "Apache-2.0" and "CMU ARCTIC" in (voice.path / "NOTICE").read_text()
    ckpt = torch.load(voice.acoustic_path, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "fastpitch" and "optimizer" not in ckpt and ckpt["text"]["language"] == "en-us"
    torch.load(voice.aligner_path, map_location="cpu", weights_only=True)
    assert resolve_init_from("bundled", language="en-us") == voice.acoustic_path
    assert aligner_init("auto", "en-us") == voice.aligner_path
    es = get_voice(NAME)
    assert resolve_init_from("bundled", language="es") == resolve_init_from("bundled", language="it") == es.acoustic_path
    assert default_voice().name == NAME  # synthesis without a model still speaks Spanish

    out = tmp_path / "en.wav"
    res = CliRunner().invoke(app, ["synthesize", "Please leave a message after the tone.", "--voice", "en_base",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    from tts_cli.audio import load_audio

    wav = load_audio(out, 22050)
    assert 1.0 < len(wav) / 22050 < 6.0 and np.abs(wav).max() > 0.05
