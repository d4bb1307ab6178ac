"""`tts synthesize`: a tiny FastPitch trained here on a fabricated workspace, spoken through the CLI and API."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers_workspace import make_workspace  # noqa: E402

from tts_cli.text.chunking import CLAUSE_PAUSE_S, SENTENCE_PAUSE_S, split_text
from tts_cli.errors import SynthesisError
from tts_cli.inference.synthesizer import SynthesisWarning, Synthesizer
from tts_cli.text.input_file import read_input_file
from tts_cli.inference.resolve import resolve_model

MICRO = {"preset": "tiny", "d_model": 48, "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 96,
         "decoder_ff": 96, "duration_predictor_filters": 32, "pitch_predictor_filters": 32,
         "energy_predictor_filters": 32, "aligner_channels": 16}
# symbols of the fabricated workspace (text type "phonemes": input is cut into these symbols)
SAY = "pataka mesa, bodelo kisu. tomate supo"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """40 training steps (a few seconds): durations and pitch become meaningful."""
    from tts_cli.stages.train import train

    root = tmp_path_factory.mktemp("synth")
    work = make_workspace(root / "work", n_utts=10, n_val=2, frames_per_symbol=(3, 6))
    train(work, root / "run", config={"model": MICRO, "train": {
        "steps": 40, "lr": 0.05, "warmup": 3, "batch_frames": 200, "log_every": 10, "val_every": 0,
        "checkpoint_every": 100, "num_workers": 0}}, progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def synth(run_dir):
    return Synthesizer(resolve_model(run=run_dir), vocoder="griffin-lim")


def cli(*args):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    return CliRunner().invoke(app, ["synthesize", *map(str, args)], terminal_width=200)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768, w.getframerate()


def test_cli_writes_a_valid_non_silent_wav(run_dir, tmp_path):
    out = tmp_path / "hola.wav"
    res = cli(SAY, "--run", run_dir, "-o", out, "--save-mel", "--save-durations")
    assert res.exit_code == 0, res.output
    wav, sr = read_wav(out.read_bytes())
    assert sr == 22050
    assert len(wav) > 0.3 * sr and np.sqrt(np.mean(wav ** 2)) > 1e-3
    assert "RTF" in res.stderr and "compute time / audio duration" in res.stderr
    mel = np.load(tmp_path / "hola.mel.npy")
    durs = json.loads((tmp_path / "hola.durations.json").read_text())
    assert mel.shape[0] == 80 and len(durs["symbols"]) == len(durs["durations"]) > 10
    assert sum(durs["durations"]) > 0


def test_speed_two_halves_the_duration(synth):
    normal = synth.synthesize(SAY)
    fast = synth.synthesize(SAY, speed=2.0)
    assert normal.durations.sum() > 20  # the trained model speaks, so the ratio means something
    assert 0.4 < fast.seconds / normal.seconds < 0.6
    assert fast.symbols == normal.symbols


def test_pace_alias_and_cli_speed(run_dir, tmp_path):
    cli(SAY, "--run", run_dir, "-o", tmp_path / "a.wav")
    cli(SAY, "--run", run_dir, "-o", tmp_path / "b.wav", "--pace", "2")
    a, _ = read_wav((tmp_path / "a.wav").read_bytes())
    b, _ = read_wav((tmp_path / "b.wav").read_bytes())
    assert 0.4 < len(b) / len(a) < 0.6


def test_pitch_shift_octave_doubles_median_f0_and_scale_zero_flattens(synth):
    base = synth.synthesize(SAY)
    up = synth.synthesize(SAY, pitch_shift=12)
    assert np.median(up.pitch_hz) / np.median(base.pitch_hz) == pytest.approx(2.0, rel=0.02)
    np.testing.assert_array_equal(up.durations, base.durations)  # pitch does not change timing
    flat = synth.synthesize(SAY, pitch_scale=0.0)
    assert np.ptp(flat.pitch_hz) < 1e-3 * np.mean(flat.pitch_hz)
    lively = synth.synthesize(SAY, pitch_scale=2.0)
    mean = synth._speaker_pitch(None)[0]
    np.testing.assert_allclose(lively.pitch_hz - mean, 2 * (base.pitch_hz - mean), rtol=1e-3, atol=1e-2)


def test_stdout_output_is_a_valid_wav(run_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tts_cli", "synthesize", SAY, "--run", str(run_dir), "-o", "-"],
                          capture_output=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout[:4] == b"RIFF"
    wav, sr = read_wav(proc.stdout)
    assert sr == 22050 and len(wav) > 0.3 * sr
    assert b"RTF" in proc.stderr
    assert not (tmp_path / "tts_output.wav").exists()


def test_batch_from_file_and_one_warning_for_unknown_symbols(run_dir, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("first|pataka mesa\n\nbodelo kisu xoxo\nthird|tomate zapo, supo\n", encoding="utf-8")
    assert [i for i, _ in read_input_file(lines)] == ["first", "utt_0003", "third"]
    # more fields (LJSpeech metadata, a held-out list with the recordings' paths): only the text is spoken
    meta = tmp_path / "meta.csv"
    meta.write_text("LJ001|Dr. Smith, 2 cats.|Doctor Smith, two cats.\nvm-sorry|Lo siento.|/data/wavs/vm-sorry.wav\n"
                    "n1||solo normalizado\n", encoding="utf-8")
    assert read_input_file(meta) == [("LJ001", "Dr. Smith, 2 cats."), ("vm-sorry", "Lo siento."),
                                     ("n1", "solo normalizado")]
    res = cli("-i", lines, "--output-dir", tmp_path / "out", "--run", run_dir)
    assert res.exit_code == 0, res.output
    for name in ("first", "utt_0003", "third"):
        wav, sr = read_wav((tmp_path / "out" / f"{name}.wav").read_bytes())
        assert len(wav) > 0.1 * sr
    warned = [line for line in res.stderr.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "'x'" in warned[0] and "'z'" in warned[0]


def test_input_file_reads_comma_csv_and_skips_a_header(tmp_path):
    """A held-out list saved as a spreadsheet CSV speaks its text column, never the id."""
    csv_file = tmp_path / "held_out.csv"
    csv_file.write_text('id,text,path\nvm-goodbye,"Adiós, hasta luego.",wavs/vm-goodbye.wav\n'
                        'vm-press,Presione 1\n', encoding="utf-8")
    assert read_input_file(csv_file) == [("vm-goodbye", "Adiós, hasta luego."), ("vm-press", "Presione 1")]
    semicolons = tmp_path / "excel_es.csv"
    semicolons.write_text('id;texto\nvm-goodbye;"Adiós; hasta luego."\n', encoding="utf-8")
    assert read_input_file(semicolons) == [("vm-goodbye", "Adiós; hasta luego.")]
    semicolons.write_text("id; texto\nvm-goodbye; Adiós.\n", encoding="utf-8")  # named columns: spaces allowed
    assert read_input_file(semicolons) == [("vm-goodbye", "Adiós.")]
    tsv = tmp_path / "lines.tsv"
    tsv.write_text("u1\tHola, mundo.\n", encoding="utf-8")
    assert read_input_file(tsv) == [("u1", "Hola, mundo.")]
    # plain sentences in a .csv stay whole: not every row starts with an id
    plain = tmp_path / "plain.csv"
    plain.write_text("Hola, ¿cómo estás?\nBuenos días a todos\n", encoding="utf-8")
    assert [t for _, t in read_input_file(plain)] == ["Hola, ¿cómo estás?", "Buenos días a todos"]
    plain.write_text("Sí, claro.\nNo, gracias.\n", encoding="utf-8")  # a word, a comma and a space: no id
    assert [t for _, t in read_input_file(plain)] == ["Sí, claro.", "No, gracias."]
    piped = tmp_path / "piped.txt"
    piped.write_text("id|text\nu1|Hola, mundo.\n", encoding="utf-8")
    assert read_input_file(piped, with_lines=True) == [("u1", "Hola, mundo.", 2)]


def test_unknown_symbols_warn_once_per_call(synth):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = synth.synthesize("xapa zoko. xu pata, [[wawa]]")
    mine = [w for w in caught if issubclass(w.category, SynthesisWarning)]
    assert len(mine) == 1
    assert all(s in str(mine[0].message) for s in ("'x'", "'z'", "'w'"))
    assert "x" not in r.symbols and "p" in r.symbols


def test_audio_settings_mismatch_is_refused(run_dir, tmp_path):
    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.hifigan import Generator, HiFiGANConfig
    from tts_cli.config import DEFAULT_AUDIO
    from tts_cli.errors import VocoderError

    cfg = HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 16})
    save_checkpoint(tmp_path / "voc.pt", Generator(cfg).state_dict(), cfg.to_dict(), None, 0, kind="hifigan",
                    audio={**DEFAULT_AUDIO, "sample_rate": 24000})
    with pytest.raises(VocoderError, match="sample_rate"):
        Synthesizer(resolve_model(run=run_dir), vocoder=tmp_path / "voc.pt")
    res = cli(SAY, "--run", run_dir, "--vocoder", tmp_path / "voc.pt", "-o", tmp_path / "x.wav")
    assert res.exit_code == 1 and "does not fit the acoustic model" in res.stderr
    assert not (tmp_path / "x.wav").exists()


def test_matching_hifigan_vocoder_through_the_cli(run_dir, tmp_path):
    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.hifigan import Generator, HiFiGANConfig
    from tts_cli.config import DEFAULT_AUDIO

    cfg = HiFiGANConfig.from_dict({"preset": "v3", "upsample_initial_channel": 16})
    save_checkpoint(tmp_path / "voc.pt", Generator(cfg).state_dict(), cfg.to_dict(), None, 0, kind="hifigan",
                    audio=dict(DEFAULT_AUDIO))
    res = cli("pataka", "--run", run_dir, "--vocoder", tmp_path / "voc.pt", "-o", tmp_path / "h.wav",
              "--save-durations")
    assert res.exit_code == 0, res.output
    wav, _ = read_wav((tmp_path / "h.wav").read_bytes())
    frames = sum(json.loads((tmp_path / "h.durations.json").read_text())["durations"])
    assert len(wav) == frames * 256  # one chunk: no pause, HiFi-GAN gives hop samples per frame


def test_model_resolution(run_dir, tmp_path):
    assert resolve_model(run=run_dir).name in ("best.pt", "last.pt")
    assert resolve_model(model=run_dir) == resolve_model(run=run_dir)  # a run folder given as -m
    with pytest.raises(SynthesisError, match="no such model"):
        resolve_model(model=tmp_path / "nope.pt")
    with pytest.raises(SynthesisError, match="checkpoints/best.pt"):
        resolve_model(run=tmp_path)
    res = cli("hola", "--run", tmp_path)
    assert res.exit_code == 1 and "tts train" in res.stderr


def test_split_text_sentences_clauses_and_inline_phonemes():
    chunks = split_text("Hola, Sr. García. ¿Qué tal? Bien [[ˈbjen]] gracias!")
    assert [c.text for c in chunks] == ["Hola, Sr. García.", "¿Qué tal?", "Bien [[ˈbjen]] gracias!"]
    assert chunks[2].segments == [("text", "Bien"), ("phonemes", "ˈbjen"), ("text", "gracias!")]
    assert all(c.pause_s == SENTENCE_PAUSE_S for c in chunks)
    long = ", ".join(["una cláusula bastante larga número %d" % i for i in range(12)]) + "."
    parts = split_text(long, max_chars=100)
    assert len(parts) > 3 and all(len(c.text) <= 100 for c in parts)
    assert parts[0].text.endswith(",") and parts[0].pause_s == CLAUSE_PAUSE_S
    assert parts[-1].pause_s == SENTENCE_PAUSE_S
    assert " ".join(c.text for c in parts) == long
    assert [c.text for c in split_text("sin puntuación " * 30, max_chars=50)][0].startswith("sin puntuación")


def _untrained_voice(text_type: str, symbols, n_speakers: int = 1, espeak: str | None = None) -> dict:
    from dataclasses import replace

    from tts_cli.models.fastpitch import PRESETS, FastPitch

    cfg = replace(PRESETS["tiny"], n_symbols=len(symbols), n_speakers=n_speakers, aligner=False, d_model=32,
                  encoder_layers=1, decoder_layers=1, encoder_ff=32, decoder_ff=32)
    torch.manual_seed(0)
    speakers = {f"spk{i}": i for i in range(n_speakers)}
    text = {"language": "es", "text_type": text_type, "normalize": True, "keep_stress": True}
    if espeak:
        text["espeak_ng"] = espeak
    return {"kind": "fastpitch", "config": cfg.to_dict(), "model": FastPitch(cfg).state_dict(),
            "symbols": list(symbols), "step": 0, "text": text, "audio": {},
            "pitch_stats": {"speakers": {n: {"mean": 100.0 + 100 * i, "std": 20.0} for n, i in speakers.items()},
                            "corpus": {"mean": 150.0, "std": 50.0}},
            "speakers": speakers}


def test_text_goes_through_the_checkpoints_front_end_and_espeak_drift_warns():
    from tts_cli.text.symbols import base_inventory

    voice = _untrained_voice("text", base_inventory("es", "text"), espeak="0.0.1-old")
    s = Synthesizer(voice, vocoder="griffin-lim")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = s.synthesize("Tengo 3 gatos.", frames_per_symbol=3)
    assert any("espeak-ng" in str(w.message) and "0.0.1-old" in str(w.message) for w in caught)
    spoken = "".join(r.symbols)
    assert "tɾˈes" in spoken and "3" not in spoken  # normalised ("tres"), then espeak IPA
    assert r.seconds > 0
    with pytest.raises(SynthesisError, match="reads phonemes"):
        s.synthesize("hola", text_type="characters")


def test_speaker_by_name_or_id():
    voice = _untrained_voice("phonemes", ["_", " ", ".", "a", "p", "t"], n_speakers=2)
    s = Synthesizer(voice, vocoder="griffin-lim")
    assert s.resolve_speaker("spk1") == (1, "spk1")
    assert s.resolve_speaker("1") == (1, "spk1")
    assert s.resolve_speaker(None) == (0, "spk0")
    with pytest.raises(SynthesisError, match="spk0 \\(0\\), spk1 \\(1\\)"):
        s.resolve_speaker("nobody")
    # pitch is reported with each speaker's own statistics
    a = s.synthesize("pata", speaker="spk0", frames_per_symbol=2, pitch_scale=0)
    b = s.synthesize("pata", speaker="spk1", frames_per_symbol=2, pitch_scale=0)
    assert np.allclose(a.pitch_hz, 100.0) and np.allclose(b.pitch_hz, 200.0)


def test_a_model_that_predicts_no_frames_gets_a_clear_error():
    voice = _untrained_voice("phonemes", ["_", " ", ".", "a", "p", "t"])
    voice["model"]["duration_predictor.fc.bias"].fill_(-20.0)  # exp(log_dur) - 1 < 0: every duration 0
    s = Synthesizer(voice, vocoder="griffin-lim")
    with pytest.raises(SynthesisError, match="no speech frames.*undertrained"):
        s.synthesize("pata")


def test_auto_threads_leaves_the_cores_other_processes_use():
    from tts_cli.inference.cpu import auto_threads

    def reader_for(busy_cores, cores=2):
        ticks = iter([(0, 0), (int(100 * busy_cores), 100 * cores)])
        return lambda: next(ticks)

    assert auto_threads(0, cores=2, reader=reader_for(0.05)) == (2, pytest.approx(0.05))
    assert auto_threads(0, cores=2, reader=reader_for(1.0))[0] == 1
    assert auto_threads(0, cores=2, reader=reader_for(2.0))[0] == 1  # never fewer than one
    assert auto_threads(0, cores=8, reader=reader_for(3.0, 8))[0] == 5
    assert auto_threads(0, cores=4, reader=lambda: None) == (4, 0.0)  # no /proc/stat: every core


def test_mel_contrast_spreads_speech_frames_and_leaves_silence():
    from tts_cli.inference.controls import mel_contrast

    floor = float(np.log(1e-5))
    rng = np.random.default_rng(0)
    mel = np.full((80, 30), floor, np.float32)
    mel[:, 5:25] = -4 + rng.normal(0, 1, (80, 20)).astype(np.float32)
    for m in (mel, torch.from_numpy(mel)):
        out = mel_contrast(m, 1.5, floor)
        out = out.numpy() if hasattr(out, "numpy") else out
        speech = mel[:, 5:25]
        np.testing.assert_allclose(out[:, 5:25].mean(1), speech.mean(1), atol=1e-4)  # same level
        np.testing.assert_allclose(out[:, 5:25].std(1), 1.5 * speech.std(1), rtol=1e-3)  # wider spread
        assert np.array_equal(out[:, :5], mel[:, :5]) and out.min() >= floor  # silence untouched
        assert mel_contrast(m, 1.0, floor) is m or np.array_equal(np.asarray(mel_contrast(m, 1.0, floor)), mel)
