"""Bundled voices: export a trained run to an inference-only float16 voice, find it, speak with it
(`tts synthesize` with no model, `--voice`), list it (`tts voices`), fine-tune from it."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers_workspace import make_workspace  # noqa: E402
from test_synthesis import SAY, read_wav, run_dir  # noqa: E402,F401 - run_dir: 40-step tiny FastPitch run

from tts_cli.inference import voice_export, voices  # noqa: E402
from tts_cli.errors import AlignmentError, VoiceError

NAME = "es_test"
TRAINING_ONLY = ("optimizer", "scheduler", "scaler", "rng", "sampler", "discriminator", "optimizer_d")


def invoke(*args):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def vocoder_ckpt(tmp_path_factory):
    """A small HiFi-GAN checkpoint laid out as `tts train --model hifigan` writes it (weight norm,
    discriminators, optimizer state); weights far from the init so its output is not silence."""
    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.hifigan import Generator, HiFiGANConfig
    from tts_cli.config import DEFAULT_AUDIO

    cfg = HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 32})
    gen = Generator(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in gen.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    path = tmp_path_factory.mktemp("voc") / "last.pt"
    save_checkpoint(path, gen.state_dict(), cfg.to_dict(), None, 500, kind="hifigan", audio=dict(DEFAULT_AUDIO),
                    optimizer={"state": {}, "param_groups": []}, discriminator={"w": torch.ones(64, 64)},
                    optimizer_d={"state": {}, "param_groups": []}, rng={"torch": torch.get_rng_state()})
    return path


@pytest.fixture(scope="module")
def voices_root(run_dir, vocoder_ckpt, tmp_path_factory):  # noqa: F811
    """src/tts_cli/resources/voices/ stand-in: the exported voice plus the teacher's folder (no voice.json)."""
    root = tmp_path_factory.mktemp("voices")
    (root / "kokoro").mkdir()
    (root / "kokoro" / "vocab.json").write_text("{}", encoding="utf-8")
    notice = tmp_path_factory.mktemp("notice") / "NOTICE"
    notice.write_text("trained on a fabricated corpus\n", encoding="utf-8")
    voice_export.export_voice(run_dir, root, name=NAME, vocoder_ckpt=vocoder_ckpt, licence="CC-BY-4.0",
                        attribution="tests", description="tiny", summary={"hours": 0.01}, notices=[notice])
    return root


@pytest.fixture()
def use_voices(monkeypatch):
    """Point tts_cli.inference.voices at a folder for one test."""
    monkeypatch.delenv(voices.ENV_DIRS, raising=False)

    def use(root: Path) -> Path:
        monkeypatch.setattr(voices, "VOICES_DIRS", (Path(root),))
        return Path(root)

    return use


def _size(path: Path) -> int:
    return path.stat().st_size


def test_export_keeps_inference_state_only_in_float16(run_dir, vocoder_ckpt, voices_root, tmp_path):  # noqa: F811
    folder = voices_root / NAME
    meta = json.loads((folder / "voice.json").read_text())
    assert meta["files"] == {"acoustic": "fastpitch.pt", "vocoder": "hifigan.pt", "notices": ["NOTICE"]}
    assert meta["licence"] == "CC-BY-4.0" and meta["speakers"] == ["default"] and meta["sample_rate"] == 22050
    assert meta["language"] == "es" and meta["training"]["hours"] == 0.01 and meta["training"]["vocoder_step"] == 500

    source = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert "optimizer" in source and any(k.startswith("attention.") for k in source["model"])  # what must go
    ac = torch.load(folder / "fastpitch.pt", weights_only=True)
    voc = torch.load(folder / "hifigan.pt", weights_only=True)
    for ckpt in (ac, voc):
        assert not set(TRAINING_ONLY) & set(ckpt)
        floats = [v for v in ckpt["model"].values() if v.is_floating_point() and v.numel() > 1]
        assert floats and all(v.dtype == torch.float16 for v in floats)
    assert not any(k.startswith("attention.") for k in ac["model"]) and ac["config"]["aligner"] is False
    assert ac["symbols"] == source["symbols"] and ac["pitch_stats"] == source["pitch_stats"]
    assert ac["model"]["pitch_mean"].dtype == torch.float32  # scalars keep full precision
    assert not any(k.endswith("weight_v") for k in voc["model"])  # weight norm folded in

    fp32 = voice_export.export_voice(run_dir, tmp_path, name="full", vocoder_ckpt=vocoder_ckpt, fp16=False)
    for f in ("fastpitch.pt", "hifigan.pt"):
        assert 0.4 < _size(folder / f) / _size(fp32.path / f) < 0.6  # about half
    assert _size(folder / "fastpitch.pt") < 0.3 * _size(run_dir / "checkpoints" / "last.pt")


def test_list_get_default_and_broken_voices(voices_root, use_voices, tmp_path):
    from tts_cli.inference.resolve import find_vocoder_beside

    use_voices(voices_root)
    found = voices.list_voices()
    assert [v.name for v in found] == [NAME]  # kokoro/ has no voice.json: not a voice
    v = found[0]
    assert v.vocoder_label == "HiFi-GAN custom" and v.size_bytes > _size(v.acoustic_path)
    assert voices.get_voice(NAME).acoustic_path == v.acoustic_path
    assert voices.default_voice().name == NAME

    root = use_voices(tmp_path / "voices")
    shutil.copytree(voices_root / NAME, root / "b_gl")
    meta = json.loads((root / "b_gl" / "voice.json").read_text())
    (root / "b_gl" / "voice.json").write_text(json.dumps({**meta, "name": "b_gl",
                                                          "files": {**meta["files"], "vocoder": None}}))
    shutil.copytree(root / "b_gl", root / "c_missing")
    (root / "c_missing" / "voice.json").write_text(json.dumps({**meta, "name": "c_missing"}))
    (root / "c_missing" / "hifigan.pt").unlink()
    (root / "d_bad").mkdir()
    (root / "d_bad" / "voice.json").write_text("{not json")
    errors: list = []
    assert [v.name for v in voices.list_voices(errors=errors)] == ["b_gl"]
    text = " ".join(map(str, errors))
    assert "c_missing" in text and "'hifigan.pt', which is missing" in text and "d_bad" in text and "JSON" in text
    with pytest.raises(VoiceError, match="c_missing.*missing"):
        voices.get_voice("c_missing")
    gl = voices.get_voice("b_gl")
    assert gl.vocoder_label == "default (universal V1)" and (gl.path / "hifigan.pt").exists()
    assert find_vocoder_beside(gl.acoustic_path) is None  # voice.json decides, not a stray file
    assert find_vocoder_beside(v.acoustic_path) == v.vocoder_path

    shutil.copytree(root / "b_gl", root / "a_first")
    (root / "a_first" / "voice.json").write_text(json.dumps({**meta, "name": "a_first"}))
    assert voices.default_voice().name == "a_first"  # no default.txt: the first by name
    (root / "default.txt").write_text("# the default voice\nb_gl\n")
    assert voices.default_voice().name == "b_gl"
    (root / "default.txt").write_text("nope\n")
    with pytest.raises(VoiceError, match="default.txt names 'nope'"):
        voices.default_voice()


def test_synthesize_with_no_model_speaks_the_bundled_voice(run_dir, vocoder_ckpt, voices_root, use_voices,  # noqa: F811
                                                           tmp_path):
    from tts_cli.inference.synthesizer import Synthesizer
    from tts_cli.config import DEFAULT_AUDIO
    from tts_cli.inference.vocoders import load_vocoder

    use_voices(voices_root)
    res = invoke("synthesize", SAY, "-o", tmp_path / "v.wav", "--save-mel", "--save-durations")
    assert res.exit_code == 0, res.output
    assert f"voice {NAME}" in res.stderr and "hifigan" in res.stderr  # the voice's own vocoder
    wav, sr = read_wav((tmp_path / "v.wav").read_bytes())
    assert sr == 22050 and len(wav) > 0.3 * sr and np.sqrt(np.mean(wav ** 2)) > 1e-3
    res = invoke("synthesize", SAY, "--run", run_dir, "--vocoder", vocoder_ckpt, "-o", tmp_path / "o.wav",
                 "--save-mel", "--save-durations")
    assert res.exit_code == 0, res.output
    fp16_frames = sum(json.loads((tmp_path / "v.durations.json").read_text())["durations"])
    fp32_frames = sum(json.loads((tmp_path / "o.durations.json").read_text())["durations"])
    assert fp32_frames > 20 and abs(fp16_frames - fp32_frames) <= 2

    # same durations forced: the float16 voice's mel and vocoder stay close to the float32 originals
    voice = voices.get_voice(NAME)
    a = Synthesizer(voice.acoustic_path, vocoder="griffin-lim").synthesize(SAY, frames_per_symbol=4)
    b = Synthesizer(run_dir / "checkpoints" / "last.pt", vocoder="griffin-lim").synthesize(SAY, frames_per_symbol=4)
    assert a.mel.shape == b.mel.shape and np.abs(a.mel - b.mel).mean() < 0.02 * np.abs(b.mel).mean()
    mel = torch.from_numpy(b.mel[None, :, :40])
    ref = load_vocoder(vocoder_ckpt, DEFAULT_AUDIO, precision="fp32", channels_last=False)(mel)
    half = load_vocoder(voice.vocoder_path, DEFAULT_AUDIO, precision="fp32", channels_last=False)(mel)
    assert float((half - ref).pow(2).mean() / ref.pow(2).mean()) < 1e-3  # > 30 dB SNR


def test_voice_option(voices_root, use_voices, tmp_path, run_dir):  # noqa: F811
    use_voices(voices_root)
    res = invoke("synthesize", SAY, "--voice", "nope", "-o", tmp_path / "x.wav")
    assert res.exit_code == 1 and "unknown voice 'nope'" in res.stderr and NAME in res.stderr
    res = invoke("synthesize", SAY, "--voice", NAME, "--run", run_dir, "-o", tmp_path / "x.wav")
    assert res.exit_code == 1 and "exclude each other" in res.stderr
    res = invoke("synthesize", SAY, "--voice", NAME, "--vocoder", "griffin-lim", "-o", tmp_path / "x.wav")
    assert res.exit_code == 0, res.output
    assert "griffin-lim" in res.stderr and (tmp_path / "x.wav").exists()
    use_voices(tmp_path / "empty")
    res = invoke("synthesize", SAY, "-o", tmp_path / "y.wav")
    assert res.exit_code == 1 and "none is bundled" in res.stderr


def test_tts_voices_lists_and_says_how_to_make_one(voices_root, use_voices, tmp_path):
    use_voices(voices_root)
    res = invoke("voices")
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if NAME in line)
    for cell in ("es", "default", "22050", "HiFi-GAN custom", "CC-BY-4.0"):
        assert cell in row
    assert f"default voice: {NAME}" in res.stdout and "kokoro" not in res.stdout
    use_voices(tmp_path)
    res = invoke("voices")
    assert res.exit_code == 0 and "no voices bundled" in res.stdout and "tts export-voice" in res.stdout


def test_export_voice_cli(run_dir, vocoder_ckpt, voices_root, tmp_path):  # noqa: F811
    out = tmp_path / "voices"
    (out / "kokoro").mkdir(parents=True)
    (out / "kokoro" / "x.bin").write_bytes(b"x")
    args = ["export-voice", "--model", run_dir, "--vocoder", vocoder_ckpt.parent, "--out", out,
            "--licence", "MIT", "--summary", '{"hours": 2.5}']
    res = invoke(*args, "--name", "mine")
    assert res.exit_code == 0, res.output
    voice = voices.load_voice(out / "mine")
    assert voice.licence == "MIT" and voice.metadata["training"]["hours"] == 2.5
    assert "fastpitch.pt" in res.stderr and "--voice mine" in res.stdout
    res = invoke(*args, "--name", "mine")
    assert res.exit_code == 1 and "--force" in res.stderr
    res = invoke(*args, "--name", "kokoro")
    assert res.exit_code == 1 and "not a voice folder" in res.stderr and (out / "kokoro" / "x.bin").exists()
    res = invoke("export-voice", "--model", run_dir, "--out", out, "--name", "mine", "--force", "--fp32")
    assert res.exit_code == 0, res.output  # replaced: now float32 and no vocoder of its own, the old vocoder file gone
    voice = voices.load_voice(out / "mine")
    assert voice.vocoder_path is None and not (out / "mine" / "hifigan.pt").exists()
    assert voice.metadata["acoustic"]["dtype"] == "float32"


def test_init_from_bundled(voices_root, use_voices, tmp_path):
    from tts_cli.errors import TrainConfigError
    from tts_cli.stages.train import train

    use_voices(voices_root)
    voice = voices.get_voice(NAME)
    assert voices.resolve_init_from("bundled") == voice.acoustic_path
    assert voices.resolve_init_from(f"bundled:{NAME}") == voice.acoustic_path
    assert voices.resolve_init_from("bundled", "vocoder") == voice.vocoder_path
    assert voices.resolve_init_from("x/base.pt") == Path("x/base.pt")
    with pytest.raises(VoiceError, match="unknown voice 'nope'"):
        voices.resolve_init_from("bundled:nope")

    # a vocoder fine-tune starts from the voice's float16, weight-norm-free generator
    from tts_cli.models.hifigan import Generator, HiFiGANConfig
    from tts_cli.training.hifigan_job import init_vocoder_from as init_vocoder
    from tts_cli.config import DEFAULT_AUDIO

    gen, _ = init_vocoder(Generator(HiFiGANConfig.from_dict({"preset": "v3"})),
                          voices.resolve_init_from("bundled", "vocoder"), dict(DEFAULT_AUDIO), 1.0, None)
    stored = torch.load(voice.vocoder_path, weights_only=True)["model"]["conv_pre.weight"]
    assert gen.config.upsample_initial_channel == 32 and any(k.endswith("weight_v") for k in gen.state_dict())
    torch.testing.assert_close(gen.remove_weight_norm().conv_pre.weight.detach(), stored.float())

    work = make_workspace(tmp_path / "work", n_utts=6, n_val=1, seed=3)
    small = dict(steps=1, num_workers=0, batch_frames=400, progress=False)
    # finetune_es: init_from bundled by default, the architecture (not `preset: base`) from the voice
    s = train(work, tmp_path / "ft", config="finetune_es", **small)
    actions = {r["name"]: r["action"] for r in s["load_report"]}
    assert actions["decoder.layers.0.pos_ff.CoreNet.0.weight"] == "loaded"
    ft = torch.load(tmp_path / "ft" / "checkpoints" / "last.pt", weights_only=True)
    src = torch.load(voice.acoustic_path, weights_only=True)
    assert ft["config"]["d_model"] == src["config"]["d_model"] == 48 and ft["config"]["alignment"] == "external"
    # the recipe's dropouts (training choices) apply to the loaded architecture
    assert ft["config"]["decoder_dropout"] == ft["config"]["encoder_dropout"] == 0.3 != src["config"]["decoder_dropout"]
    assert str(voice.acoustic_path) in (tmp_path / "ft" / "config.yaml").read_text()

    use_voices(tmp_path / "none")
    with pytest.raises(TrainConfigError, match="no voice is bundled.*--init-from"):
        train(work, tmp_path / "ft2", config="finetune_es", **small)
    s = train(work, tmp_path / "ft3", config="finetune_es", init_from=voice.acoustic_path, **small)  # CLI wins
    assert s["step"] == 1 and s["load_report"]


def test_bundled_means_the_voice_of_the_workspace_language(voices_root, use_voices, tmp_path):
    """`bundled` / align's `auto` pick the bundled voice that speaks the workspace's language (a
    base that already speaks it learns a new speaker from minutes far better), else the default."""
    from tts_cli.stages.align_training import resolve_init_from as aligner_init
    from tts_cli.stages.train import train

    root = tmp_path / "voices"
    shutil.copytree(voices_root / NAME, root / NAME)  # language es, the default (first by name)
    shutil.copytree(voices_root / NAME, root / "zz_en")
    meta = json.loads((root / "zz_en" / "voice.json").read_text(encoding="utf-8"))
    meta.update(name="zz_en", language="en")
    meta["files"]["aligner"] = "aligner.pt"
    (root / "zz_en" / "aligner.pt").write_bytes(b"")
    (root / "zz_en" / "voice.json").write_text(json.dumps(meta), encoding="utf-8")
    use_voices(root)

    assert voices.default_voice().name == NAME
    assert voices.default_voice("en-us").name == voices.default_voice("EN_GB").name == "zz_en"
    assert voices.default_voice("es-419").name == voices.default_voice("fr").name == NAME
    en = voices.get_voice("zz_en")
    assert voices.resolve_init_from("bundled", language="en-us") == en.acoustic_path
    assert voices.resolve_init_from(f"bundled:{NAME}", language="en-us") == voices.get_voice(NAME).acoustic_path
    assert aligner_init("auto", "en-us") == aligner_init("bundled", "en") == en.aligner_path
    assert aligner_init("auto", "es") is None  # es_test ships no aligner: from scratch

    work = make_workspace(tmp_path / "work", n_utts=6, n_val=1, seed=3, language="en-us")
    train(work, tmp_path / "ft", config="finetune_es", steps=1, num_workers=0, batch_frames=400, progress=False)
    assert str(en.acoustic_path) in (tmp_path / "ft" / "config.yaml").read_text(encoding="utf-8")


def test_voice_ships_an_aligner_that_tts_align_starts_from(run_dir, use_voices, tmp_path):  # noqa: F811
    from test_stage_align import TINY, boundary_error, make_workspace as make_align_workspace

    from tts_cli.stages.align import align
    from tts_cli.workspace import Workspace

    src = tmp_path / "src"
    make_align_workspace(src, n_utts=8)
    align(src, steps=150, config=TINY)
    voice = voice_export.export_voice(run_dir, tmp_path / "voices", name="with_aligner", aligner_ckpt=src / "aligner.pt")
    assert voice.files["aligner"] == "aligner.pt" and voice.metadata["aligner"]["step"] == 150
    shipped = torch.load(voice.aligner_path, weights_only=True)
    assert "optimizer" not in shipped and "rng" not in shipped and shipped["audio"]["n_mels"] == 80
    assert shipped["model"]["embedding.weight"].dtype == torch.float16

    use_voices(tmp_path / "voices")
    for name, extra in (("auto", {}), ("cold", {"init_from": "none"})):
        truth = make_align_workspace(tmp_path / name, n_utts=8)
        align(tmp_path / name, steps=30, config={"align": {**TINY["align"], **extra}})
    assert str(voice.aligner_path) in (tmp_path / "auto" / "align_config.yaml").read_text()
    assert "init_from: /" not in (tmp_path / "cold" / "align_config.yaml").read_text()

    def median_error(root):
        ws = Workspace(root)
        return np.median([boundary_error(np.load(ws.duration_path(r["id"])), truth[r["id"]]) for r in ws.load_manifest()])

    assert median_error(tmp_path / "auto") <= 2 < median_error(tmp_path / "cold")

    # an aligner of another size is passed over by "auto", an error when asked for by name
    other = {"align": {**TINY["align"], "n_text_channels": 24}}
    make_align_workspace(tmp_path / "other", n_utts=3)
    assert align(tmp_path / "other", steps=2, config=other)["trained_steps"] == 2
    before = (tmp_path / "other" / "aligner.pt").read_bytes()
    with pytest.raises(AlignmentError, match="n_text_channels is 32 there, 24 here"):
        align(tmp_path / "other", steps=2, config={"align": {**other["align"], "init_from": "bundled"}}, force=True)
    assert (tmp_path / "other" / "aligner.pt").read_bytes() == before  # --force replaced nothing
    use_voices(tmp_path / "none")
    with pytest.raises(AlignmentError, match="no voice is bundled"):
        align(tmp_path / "other", steps=2, config={"align": {**TINY["align"], "init_from": "bundled"}}, force=True)


def test_align_auto_starts_from_scratch_when_the_default_voice_is_broken(tmp_path, use_voices):
    """`align: init_from: auto` passes over a default voice it cannot read (said so) instead of stopping."""
    from test_stage_align import TINY, make_workspace as make_align_workspace

    from tts_cli.stages.align import align

    root = tmp_path / "voices"
    root.mkdir()
    (root / "default.txt").write_text("nope\n")
    use_voices(root)
    make_align_workspace(tmp_path / "w", n_utts=3)
    assert align(tmp_path / "w", steps=2, config={"align": {**TINY["align"], "init_from": "auto"}})["trained_steps"] == 2
