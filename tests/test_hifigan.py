"""HiFi-GAN: generator shapes, weight norm, checkpoint layouts (ours, jik876, NVIDIA), losses, audio checks."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tts_cli.models.hifigan import (PRESETS, Discriminators, Generator, HiFiGANConfig, count_parameters,
                                    discriminator_loss, feature_loss, generator_loss)
from tts_cli.config import DEFAULT_AUDIO
from tts_cli.errors import ConfigError, VocoderError
from tts_cli.inference.vocoders import load_vocoder
from tts_cli.checkpoints.hifigan import flat_to_nested_resblocks

REFERENCE = Path("/work/shared/reference/nvidia_hifigan_generator_state_dict.json")
# V1's layout at 1/16 of the channels: every code path, milliseconds per forward
SMALL_V1 = {"upsample_initial_channel": 32}


def test_config_takes_a_jik876_config_json_but_refuses_a_typo():
    jik876 = {"resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8,
              "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4], "upsample_initial_channel": 128,
              "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
              "segment_size": 8192, "num_mels": 80, "n_fft": 1024, "hop_size": 256, "sampling_rate": 22050,
              "dist_config": {"dist_backend": "nccl"}}
    assert HiFiGANConfig.from_dict(jik876) == PRESETS["v2"]
    with pytest.raises(ConfigError, match="upsample_rate"):
        HiFiGANConfig.from_dict({"preset": "v3", "upsample_rate": [8, 8, 4]})


def _randomize(gen: Generator, seed: int = 0) -> Generator:
    """Weights far from the init (so a wrong mapping or kernel order cannot go unnoticed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gen.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (0.5 if p.dim() == 3 and p.shape[1:] == (1, 1) else 0))
    return gen.eval()


def _reference_output(gen: Generator, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return gen(mel).squeeze(1)


@pytest.mark.parametrize("name,params", [("v1", 13_936_130), ("v2", 928_514), ("v3", 1_464_322)])
def test_generator_shapes_and_sizes(name, params):
    gen = Generator(PRESETS[name])
    assert count_parameters(gen) == params  # the papers' sizes (V1 also equals NVIDIA's count)
    mel = torch.randn(2, 80, 7)
    with torch.no_grad():
        wav = gen(mel)
    assert wav.shape == (2, 1, 7 * 256)
    assert gen.hop_length == 256
    assert wav.abs().max() <= 1.0


def test_weight_norm_removal_and_channels_last_keep_the_output():
    gen = _randomize(Generator(HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 32})))
    mel = torch.randn(1, 80, 9)
    ref = _reference_output(gen, mel)
    assert any(k.endswith("weight_g") for k in gen.state_dict())
    gen.remove_weight_norm()
    assert not any(k.endswith(("weight_g", "weight_v")) for k in gen.state_dict())
    torch.testing.assert_close(_reference_output(gen, mel), ref, atol=1e-5, rtol=1e-4)
    fast = gen.as_conv2d()
    torch.testing.assert_close(_reference_output(fast, mel), ref, atol=1e-5, rtol=1e-4)


def test_v1_state_dict_matches_nvidia_layout_from_reference_json():
    ref = json.loads(REFERENCE.read_text())
    ours = Generator(PRESETS["v1"]).state_dict()
    nested = flat_to_nested_resblocks(ours, n_kernels=3)
    assert {k: list(v.shape) for k, v in nested.items()} == ref["state_dict"]
    plain = Generator(PRESETS["v1"]).remove_weight_norm().state_dict()
    assert {k: list(v.shape) for k, v in flat_to_nested_resblocks(plain, 3).items()} == ref["state_dict_after_remove_weight_norm"]


def test_jik876_checkpoint_with_config_json(tmp_path):
    cfg = HiFiGANConfig.from_dict(SMALL_V1)
    src = _randomize(Generator(cfg))
    folder = tmp_path / "cp_hifigan"
    folder.mkdir()
    torch.save({"generator": src.state_dict()}, folder / "g_00100000")
    (folder / "config.json").write_text(json.dumps({
        "resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8,
        "upsample_rates": cfg.upsample_rates, "upsample_kernel_sizes": cfg.upsample_kernel_sizes,
        "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 8192, "num_mels": 80,
        "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000,
    }))
    mel = torch.randn(1, 80, 11)
    ref = _reference_output(src, mel)
    voc = load_vocoder(folder / "g_00100000", DEFAULT_AUDIO, precision="fp32", window=0, channels_last=False)
    torch.testing.assert_close(voc(mel), ref, atol=1e-5, rtol=1e-4)
    fast = load_vocoder(folder / "g_00100000", DEFAULT_AUDIO, precision="fp32", window=0)  # channels-last on CPU
    torch.testing.assert_close(fast(mel), ref, atol=1e-5, rtol=1e-4)
    assert voc.sample_rate == 22050 and voc.hop_length == 256


def test_jik876_v3_without_config_json_is_inferred_from_shapes(tmp_path):
    src = _randomize(Generator(HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 32})), seed=1)
    torch.save({"generator": src.state_dict()}, tmp_path / "g_02500000")
    voc = load_vocoder(tmp_path / "g_02500000", DEFAULT_AUDIO, precision="fp32", window=0, channels_last=False)
    assert voc.config.resblock == "2" and voc.config.resblock_dilation_sizes == [[1, 2], [2, 6], [3, 12]]
    assert voc.config.upsample_rates == [8, 8, 4]
    mel = torch.randn(2, 80, 6)
    torch.testing.assert_close(voc(mel), _reference_output(src, mel), atol=1e-5, rtol=1e-4)


def _nested(state: dict, n_kernels: int) -> dict:
    """Our flat resblocks -> NVIDIA's nested ones, written independently of tts_cli's mapping."""
    out = {}
    for k, v in state.items():
        m = re.match(r"resblocks\.(\d+)\.(.*)", k)
        out[f"resblocks.{int(m.group(1)) // n_kernels}.{int(m.group(1)) % n_kernels}.{m.group(2)}" if m else k] = v
    return out


@pytest.mark.parametrize("kernel_order", [[3, 7, 11], [11, 7, 3]])
@pytest.mark.parametrize("with_config", [True, False])
def test_nvidia_checkpoint_layout_and_kernel_order(tmp_path, kernel_order, with_config):
    cfg = HiFiGANConfig.from_dict({**SMALL_V1, "resblock_kernel_sizes": kernel_order})
    src = _randomize(Generator(cfg), seed=2)
    ckpt = {"generator": {f"module.{k}": v for k, v in _nested(src.state_dict(), 3).items()}, "gen_ema": None,
            "train_state": {"epoch": 6500}}
    if with_config:
        ckpt["config"] = {"upsample_rates": cfg.upsample_rates, "upsample_kernel_sizes": cfg.upsample_kernel_sizes,
                          "upsample_initial_channel": 32, "resblock": "1", "resblock_kernel_sizes": kernel_order,
                          "resblock_dilation_sizes": [[1, 3, 5]] * 3}
        ckpt["train_setup"] = {"sampling_rate": 22050, "hop_length": 256, "win_length": 1024,
                               "filter_length": 1024, "num_mels": 80, "mel_fmin": 0.0, "mel_fmax": 8000.0}
    # NVIDIA's weight_g of the 1-channel conv_post may come squeezed: the loader reshapes it
    ckpt["generator"]["module.conv_post.weight_g"] = ckpt["generator"]["module.conv_post.weight_g"].reshape(1)
    path = tmp_path / "hifigan_gen_checkpoint_6500.pt"
    torch.save(ckpt, path)
    voc = load_vocoder(path, DEFAULT_AUDIO, precision="fp32", window=0, channels_last=False)
    assert voc.config.resblock_kernel_sizes == kernel_order
    mel = torch.randn(1, 80, 10)
    torch.testing.assert_close(voc(mel), _reference_output(src, mel), atol=1e-5, rtol=1e-4)


def test_nvidia_layout_from_reference_json_loads(tmp_path):
    """A checkpoint fabricated purely from the published key/shape list (V1, [3, 7, 11])."""
    ref = json.loads(REFERENCE.read_text())
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(shape, generator=g) * 0.05 for k, shape in ref["state_dict"].items()}
    path = tmp_path / "hifigan_gen_checkpoint_10000_ft.pt"
    torch.save({"generator": state, "config": ref["config"]}, path)
    voc = load_vocoder(path, DEFAULT_AUDIO, precision="fp32", window=0, channels_last=False)
    # the same weights put by hand into our flat layout
    flat = {}
    for k, v in state.items():
        m = re.match(r"resblocks\.(\d+)\.(\d+)\.(.*)", k)
        flat[f"resblocks.{int(m.group(1)) * 3 + int(m.group(2))}.{m.group(3)}" if m else k] = v
    src = Generator(PRESETS["v1"])
    src.load_state_dict(flat)
    mel = torch.randn(1, 80, 4)
    torch.testing.assert_close(voc(mel), _reference_output(src.eval(), mel), atol=1e-5, rtol=1e-4)


def _save_ours(path, cfg: HiFiGANConfig, audio: dict, gen: Generator | None = None):
    from tts_cli.checkpoints.format import save_checkpoint

    gen = gen or Generator(cfg)
    return save_checkpoint(path, gen.state_dict(), cfg.to_dict(), None, 0, kind="hifigan", audio=audio)


def test_our_checkpoint_loads_and_bf16_stays_close(tmp_path):
    cfg = HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 32})
    src = _randomize(Generator(cfg), seed=4)
    _save_ours(tmp_path / "voc.pt", cfg, DEFAULT_AUDIO, src)
    mel = torch.randn(1, 80, 12)
    ref = _reference_output(src, mel)
    voc = load_vocoder(tmp_path / "voc.pt", DEFAULT_AUDIO, precision="fp32", window=0, channels_last=False)
    torch.testing.assert_close(voc(mel), ref, atol=1e-5, rtol=1e-4)
    bf16 = load_vocoder(tmp_path / "voc.pt", DEFAULT_AUDIO, precision="bf16", window=0)
    err = (bf16(mel) - ref).pow(2).mean() / ref.pow(2).mean()
    assert float(err) < 1e-2  # > 20 dB SNR even for these far-from-trained random weights


def test_audio_settings_mismatch_is_refused(tmp_path):
    cfg = HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 16})
    _save_ours(tmp_path / "voc16k.pt", cfg, {**DEFAULT_AUDIO, "sample_rate": 16000, "fmax": 7600.0})
    with pytest.raises(VocoderError, match=r"sample_rate: 22050 .* vs 16000.*fmax"):
        load_vocoder(tmp_path / "voc16k.pt", DEFAULT_AUDIO)
    # a jik876 file without settings still must fit what its shapes reveal (hop = product of rates)
    torch.save({"generator": Generator(cfg).state_dict()}, tmp_path / "g_1")
    with pytest.raises(VocoderError, match="hop_length"):
        load_vocoder(tmp_path / "g_1", {**DEFAULT_AUDIO, "hop_length": 512, "n_fft": 2048})


def test_not_a_vocoder_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "junk.pt")
    with pytest.raises(VocoderError, match="not a HiFi-GAN checkpoint"):
        load_vocoder(tmp_path / "junk.pt", DEFAULT_AUDIO)
    with pytest.raises(VocoderError, match="no such vocoder file"):
        load_vocoder(tmp_path / "missing.pt", DEFAULT_AUDIO)


def test_discriminators_and_losses():
    disc = Discriminators()
    y = torch.randn(2, 1, 4096) * 0.1
    y_hat = torch.randn(2, 1, 4096) * 0.1
    for d, n in ((disc.mpd, 5), (disc.msd, 3)):
        rs, gs, fr, fg = d(y, y_hat)
        assert len(rs) == len(gs) == len(fr) == n
        assert all(a.shape == b.shape for a, b in zip(rs, gs))
    with torch.no_grad():
        rs, gs, fr, fg = disc.mpd(y, y)
    assert float(feature_loss(fr, fg)) == 0.0  # identical inputs: no feature difference
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert float(discriminator_loss(ones, zeros)) == 0.0  # perfect discriminator
    assert float(generator_loss(ones)) == 0.0 and float(generator_loss(zeros)) == 1.0


# ----------------------------------------------------------------------------- training and GTA

def _workspace_with_audio(root: Path) -> Path:
    """The fabricated workspace plus PCM16 wavs whose length fits each mel (1 + N // 256 frames)."""
    import sys
    import wave

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers_workspace import make_workspace

    work = make_workspace(root, n_utts=6, n_val=2, frames_per_symbol=(3, 6))
    (work / "wavs").mkdir(exist_ok=True)
    for line in (work / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        n = (row["n_frames"] - 1) * 256 + 100
        t = np.arange(n) / 22050
        pcm = (0.3 * np.sin(2 * np.pi * (150 + 10 * len(row["symbols"])) * t) * 32767).astype("<i2")
        with wave.open(str(work / "wavs" / f"{row['id']}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
            w.writeframes(pcm.tobytes())
    return work


def _gan_cfg(steps: int) -> dict:
    return {"model": {"preset": "v3", "upsample_initial_channel": 16},
            "train": {"steps": steps, "segment_size": 2048, "batch_size": 2, "log_every": 1, "val_every": 2,
                      "checkpoint_every": 100, "num_workers": 0, "discriminator_width": 0.125}}


def test_hifigan_training_runs_and_resumes_exactly(tmp_path):
    from tts_cli.checkpoints.load import load_checkpoint
    from tts_cli.stages.train_hifigan import train_hifigan

    work = _workspace_with_audio(tmp_path / "work")
    straight = train_hifigan(work, tmp_path / "straight", config=_gan_cfg(4), progress=False)
    assert straight["step"] == 4 and straight["best_checkpoint"]
    assert set(straight["losses"]) >= {"mel", "fm", "adv", "disc"}
    assert list((tmp_path / "straight" / "samples").glob("step_*/*.wav"))
    first = train_hifigan(work, tmp_path / "resumed", config=_gan_cfg(2), progress=False)
    assert first["step"] == 2
    again = train_hifigan(work, tmp_path / "resumed", resume=True, steps=4, progress=False)
    assert again["step"] == 4
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["kind"] == "hifigan" and a["audio"]["sample_rate"] == 22050
    for part in ("model", "discriminator"):
        for k, v in a[part].items():
            torch.testing.assert_close(b[part][k], v, rtol=0, atol=0, msg=f"{part}.{k} differs after resume")
    # the run's checkpoint is a vocoder `tts synthesize --vocoder` accepts
    voc = load_vocoder(tmp_path / "straight" / "checkpoints" / "last.pt", a["audio"])
    assert voc(torch.randn(1, 80, 5)).shape == (1, 5 * 256)


def test_gta_mels_have_the_target_length_and_train_a_vocoder(tmp_path):
    import numpy as np

    from tts_cli.stages.train import train
    from tts_cli.stages.train_hifigan import train_hifigan
    from tts_cli.training.gta import write_gta_mels

    work = _workspace_with_audio(tmp_path / "work")
    micro = {"preset": "tiny", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 32,
             "decoder_ff": 32, "duration_predictor_filters": 16, "pitch_predictor_filters": 16,
             "energy_predictor_filters": 16, "aligner_channels": 16}
    train(work, tmp_path / "fp", config={"model": micro, "train": {"steps": 2, "warmup": 1, "batch_frames": 200,
                                                                    "val_every": 0, "num_workers": 0}},
          progress=False)
    fp = tmp_path / "fp" / "checkpoints" / "last.pt"
    info = write_gta_mels(work, fp, device="cpu", progress=False)
    assert info["written"] == 6
    for mel_file in sorted((work / "mels").glob("*.npy")):
        gta = np.load(work / "gta" / mel_file.name)
        assert gta.shape == np.load(mel_file).shape
        assert np.isfinite(gta).all() and gta.std() > 0
    assert write_gta_mels(work, fp, device="cpu", progress=False)["written"] == 0  # same checkpoint: kept
    s = train_hifigan(work, tmp_path / "voc", config=_gan_cfg(2), gta=fp, progress=False)
    assert s["mels"] == "gta" and s["step"] == 2


def test_cli_train_hifigan_and_resume(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from tts_cli.cli import app

    work = _workspace_with_audio(tmp_path / "work")
    recipe = tmp_path / "tiny_gan.yaml"
    recipe.write_text(yaml.safe_dump(_gan_cfg(2)))
    run = tmp_path / "run"
    args = ["train", str(work), "--out", str(run), "--model", "hifigan", "--config", str(recipe)]
    res = CliRunner().invoke(app, args, terminal_width=200)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, args + ["--resume", "--steps", "3"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "resuming at step 2" in " ".join(res.output.split())
    from tts_cli.checkpoints.load import load_checkpoint

    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3
    res = CliRunner().invoke(app, ["train", str(work), "--out", str(tmp_path / "x"), "--gta", "fp.pt"])
    assert res.exit_code == 1 and "--model hifigan" in res.output


@pytest.mark.parametrize("preset", ["v1", "v3"])
def test_inference_path_and_chunked_vocoding_equal_the_whole_forward(preset):
    """The in-place inference path and the CPU vocoder's pieces (context = receptive field) must
    give the samples of one plain forward over the whole mel, seams included."""
    from tts_cli.inference.vocoders import HiFiGANVocoder

    cfg = HiFiGANConfig.from_dict({"preset": preset, "upsample_initial_channel": 32})
    gen = Generator(cfg).remove_weight_norm().eval()  # published init: outputs well inside tanh's range
    mel = torch.randn(2, 80, 70)
    mel_before = mel.clone()
    ref = _reference_output(gen, mel)
    assert ref.abs().max() < 0.9 and ref.std() > 1e-4
    torch.testing.assert_close(gen.inference(mel).squeeze(1), ref, atol=1e-6, rtol=1e-4)
    whole = HiFiGANVocoder(gen, DEFAULT_AUDIO, precision="fp32", window=0, max_frames=0)
    pieces = HiFiGANVocoder(gen, DEFAULT_AUDIO, precision="fp32", window=0, max_frames=16)  # 5 pieces of 14 frames
    torch.testing.assert_close(whole(mel), ref, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(pieces(mel), ref, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(pieces(mel[0]), ref[0], atol=1e-6, rtol=1e-4)
    assert torch.equal(mel, mel_before)  # nothing done in place on the caller's tensor
    # too little context must show at the seams (the check above can fail)
    pieces.context = 0
    assert (pieces(mel) - ref).abs().max() > 1e-5


@pytest.mark.parametrize("preset", ["v1", "v3"])
def test_receptive_field_covers_the_generators_reach(preset):
    from tts_cli.models.hifigan import receptive_field_frames

    cfg = HiFiGANConfig.from_dict({"preset": preset, "upsample_initial_channel": 32})
    gen = Generator(cfg).remove_weight_norm().eval()  # unsaturated: every reachable sample moves
    mel = torch.randn(1, 80, 60)
    bumped = mel.clone()
    bumped[..., 30] += 1.0
    changed = (_reference_output(gen, bumped) - _reference_output(gen, mel)).abs().reshape(60, 256).amax(1) > 0
    idx = changed.nonzero().flatten()
    reach = max(30 - int(idx.min()), int(idx.max()) - 30)
    # (float rounding hides the faintest far contributions, so the measured reach can fall short)
    assert 0 < reach <= receptive_field_frames(cfg) == {"v1": 15, "v3": 12}[preset]
