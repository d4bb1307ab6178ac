"""Bad input, as a user types it: every command refuses with a one-line message naming the problem,
a non-zero exit code and no traceback, before any work is done, and nothing the user owns changes.

One user folder (a workspace with a trained aligner and durations, a finished-looking run, a
dataset, files that are not what an option wants) is shared by the matrix; each case snapshots
every file in it before and after.
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write_ljspeech
from helpers_workspace import make_workspace

HAS_CUDA = __import__("torch").cuda.is_available()


def cli(*args):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_refused(result, *words):
    out = result.output
    assert result.exit_code not in (0, None), out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    assert "error:" in out, out
    for w in words:
        assert w in out, (w, out)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("user")
    work = make_workspace(root / "work", n_utts=6, n_val=1)
    (work / "aligner.pt").write_bytes(b"a trained aligner, as far as these tests care")
    write_ljspeech(root / "corpus", [(f"u{i}", "hola mundo", tone(seconds=0.6)) for i in range(3)])
    (root / "run" / "checkpoints").mkdir(parents=True)
    (root / "run" / "config.yaml").write_text("model: {preset: tiny}\n")
    (root / "run" / "checkpoints" / "last.pt").write_bytes(b"not really a checkpoint")
    (root / "file.txt").write_text("a plain file\n")
    (root / "outdir").mkdir()
    (root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"generator": {"conv_pre.weight": torch.zeros(2)}, "cfg": Path("x")}, root / "pickled.pt")
    return root


MATRIX = [
    # defect 1: align must not throw away a trained aligner for nothing
    (["align", "work", "--force", "--steps", "0"], ["align steps 0"]),
    (["align", "work", "--force", "--steps", "-5"], ["align steps -5"]),
    (["align", "work", "--batch-size", "0"], ["align batch_size 0"]),
    (["align", "work", "--device", "gpu"], ["--device 'gpu'", "not a device"]),
    (["align", "work", "--config", "no_such_recipe"], ["no_such_recipe", "not found"]),
    (["align", "nowork"], ["nowork", "manifest.jsonl"]),
    # defect 4: output folders that are files, checked before the work
    (["preprocess", "corpus", "--out", "file.txt"], ["--out file.txt", "is a file"]),
    (["preprocess", "corpus", "--out", "file.txt/ws"], ["file.txt is a file"]),
    (["preprocess", "nodata", "--out", "ws"], ["nodata"]),
    (["train", "work", "--out", "file.txt"], ["--out file.txt", "is a file"]),
    (["train", "work", "--out", "file.txt/run"], ["file.txt is a file"]),
    # defect 6: nonsense training settings
    (["train", "work", "--out", "newrun", "--steps", "0"], ["steps 0", ">= 1"]),
    (["train", "work", "--out", "newrun", "--steps", "-3"], ["steps -3"]),
    (["train", "work", "--out", "newrun", "--lr", "nan"], ["lr nan"]),
    (["train", "work", "--out", "newrun", "--lr", "-0.1"], ["lr -0.1"]),
    (["train", "work", "--out", "newrun", "--lr", "0"], ["lr 0"]),
    (["train", "work", "--out", "newrun", "--batch-frames", "0"], ["batch_frames 0"]),
    (["train", "work", "--out", "newrun", "--amp-dtype", "fp8"], ["amp 'fp8'"]),
    (["train", "work", "--out", "newrun", "--eval-every", "-1"], ["eval_every"]),
    (["train", "work", "--out", "newrun", "--config", "no_such_recipe"], ["no_such_recipe", "not found"]),
    (["train", "work", "--out", "newrun", "--model", "wavenet"], ["--model 'wavenet'"]),
    (["train", "work", "--out", "newrun", "--device", "tpu"], ["--device 'tpu'"]),
    (["train", "work", "--out", "run"], ["run already holds a run", "--resume"]),
    (["train", "work", "--out", "run", "--resume"], ["last.pt"]),
    # defect 4 + 8: synthesize output paths and formats, before any model is loaded
    (["synthesize", "hola", "-o", "outdir"], ["-o outdir", "is a folder"]),
    (["synthesize", "hola", "-o", "file.txt/h.wav"], ["file.txt is a file"]),
    (["synthesize", "hola", "-o", "h.xyz"], ["h.xyz", "unknown audio file extension '.xyz'"]),
    (["synthesize", "hola", "-o", "h"], ["unknown audio file extension '(none)'"]),
    (["synthesize", "-i", "file.txt", "--output-dir", "file.txt"], ["--output-dir file.txt", "is a file"]),
    (["synthesize", "-i", "file.txt", "-o", "out.wav"], ["-o out.wav", "--output-dir"]),
    (["synthesize", "-i", "file.txt", "-o", "tts_output.wav"], ["-o tts_output.wav", "--output-dir"]),  # the default, typed
    (["synthesize", "hola", "--output-dir", "outdir"], ["--output-dir outdir", "-o FILE"]),
    # defect 6: nonsense synthesis settings
    (["synthesize", "hola", "-o", "h.wav", "--speed", "1000"], ["--speed 1000", "from 0.25 to 4"]),
    (["synthesize", "hola", "-o", "h.wav", "--speed", "0"], ["--speed 0"]),
    (["synthesize", "hola", "-o", "h.wav", "--speed", "nan"], ["--speed nan"]),
    (["synthesize", "hola", "-o", "h.wav", "--pace", "-1"], ["--speed -1"]),
    (["synthesize", "hola", "-o", "h.wav", "--pitch-shift", "100"], ["--pitch-shift 100"]),
    (["synthesize", "hola", "-o", "h.wav", "--energy-scale", "-2"], ["--energy-scale -2"]),
    (["synthesize", "hola", "-o", "h.wav", "--precision", "fp8"], ["--precision 'fp8'"]),
    (["synthesize", "hola", "-o", "h.wav", "--batch-size", "0"], ["--batch-size 0"]),
    (["synthesize", "hola", "-o", "h.wav", "--device", "gpu"], ["--device 'gpu'"]),
    (["synthesize", "hola", "-o", "h.wav", "--vocoder", "random.pt"], ["random.pt", "not a PyTorch checkpoint"]),
    (["synthesize", "hola", "-o", "h.wav", "--vocoder", "pickled.pt"], ["pickled.pt", "pickled Python objects"]),
    (["synthesize", "hola", "-o", "h.wav", "--vocoder", "missing.pt"], ["missing.pt"]),
    (["synthesize", "hola", "-o", "h.wav", "--voice", "nope"], ["unknown voice 'nope'"]),
    (["synthesize", "hola", "-o", "h.wav", "-m", "file.txt"], ["file.txt"]),
    # defect 5: nothing the voice can speak
    (["synthesize", "你好，世界", "-o", "h.wav"], ["nothing to say", "not language es", "'你'"]),
    (["synthesize", "😀👍", "-o", "h.wav"], ["nothing to say", "not language es"]),
    (["synthesize", "", "-o", "h.wav"], ["nothing to say"]),
    (["evaluate", "-m", "file.txt"], ["--data WORK", "--texts FILE"]),
]
if not HAS_CUDA:
    MATRIX += [
        (["train", "work", "--out", "newrun", "--device", "cuda"], ["--device cuda", "CUDA is not available"]),
        (["align", "work", "--device", "cuda"], ["--device cuda", "CUDA is not available"]),
        (["synthesize", "hola", "-o", "h.wav", "--device", "cuda"], ["--device cuda", "CUDA is not available"]),
    ]


@pytest.mark.parametrize("args,words", MATRIX, ids=[" ".join(a)[:60] for a, _ in MATRIX])
def test_bad_input_is_refused_and_changes_nothing(user, monkeypatch, args, words):
    monkeypatch.chdir(user)
    monkeypatch.delenv("TTS_VOICES_DIR", raising=False)
    before = snapshot(user)
    result = cli(*args)
    assert_refused(result, *words)
    assert "weights_only=False" not in result.output
    assert snapshot(user) == before
    assert not (user / "newrun").exists() and not (user / "ws").exists()


def test_the_matrix_is_large():
    assert len(MATRIX) >= 30


# ----------------------------------------------------------------------------- defect 1

def test_align_force_with_no_steps_keeps_the_trained_aligner(user, monkeypatch):
    monkeypatch.chdir(user)
    before = snapshot(user / "work")
    for steps in ("0", "-1"):
        assert_refused(cli("align", "work", "--force", "--steps", steps), f"align steps {steps}", ">= 1")
    assert snapshot(user / "work") == before  # aligner.pt and every duration untouched


# ----------------------------------------------------------------------------- defect 2 and 7

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_train_into_a_locked_run_is_refused(user, tmp_path, monkeypatch):
    from tts_cli.training.run import run_lock

    monkeypatch.chdir(user)
    run = tmp_path / "busy"
    with run_lock(run):  # another `tts train` holds the folder
        before = snapshot(run)
        for extra in ([], ["--resume"]):
            result = cli("train", "work", "--out", run, "--steps", "2", *extra)
            assert_refused(result, f"{run} is in use by another training run (pid {os.getpid()})", "--out")
        assert snapshot(run) == before
    assert not (run / ".lock").exists() and not run.exists()  # released; the folder it made is gone


def test_a_stale_lock_is_taken_over_and_unfinished_temp_files_removed(tmp_path):
    from tts_cli.training.run import run_lock

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".lock").write_text(f"{_dead_pid()}\n")
    stale = [run / "checkpoints" / ".last.pt.k3j2x9.tmp", run / ".config.yaml.a1b2.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = run / "checkpoints" / "last.pt"
    keep.write_bytes(b"a whole checkpoint")
    with run_lock(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        assert not any(p.exists() for p in stale)
        assert keep.read_bytes() == b"a whole checkpoint"


def test_train_removes_temp_files_left_by_a_killed_checkpoint_write(tmp_path):
    """End to end: an interrupted atomic write's temp file is gone once `tts train --resume` runs."""
    from tts_cli.stages.train import train

    work = make_workspace(tmp_path / "work", n_utts=6, n_val=1)
    cfg = {"model": {"preset": "tiny", "d_model": 48, "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 96,
                     "decoder_ff": 96, "duration_predictor_filters": 32, "pitch_predictor_filters": 32,
                     "energy_predictor_filters": 32, "aligner_channels": 16},
           "train": {"steps": 1, "batch_frames": 120, "val_every": 0, "num_workers": 0, "warmup": 1}}
    run = tmp_path / "run"
    train(work, run, config=cfg, progress=False)
    tmp = run / "checkpoints" / ".last.pt.zz9x.tmp"
    tmp.write_bytes(b"\0" * 1000)
    s = train(work, run, steps=2, resume=True, progress=False)
    assert s["step"] == 2 and not tmp.exists()
    assert not list(run.rglob("*.tmp"))


# ----------------------------------------------------------------------------- defect 3

WORKER_SCRIPT = """
import os, sys, time, importlib
import torch  # noqa: F401  (as in the real commands: loaded before the pool forks)
from concurrent.futures import ProcessPoolExecutor
init = importlib.import_module(sys.argv[1])._init_worker
pool = ProcessPoolExecutor(2, initializer=init, initargs=(os.getpid(),))
futures = [pool.submit(time.sleep, 600) for _ in range(2)]
while len(pool._processes) < 2:
    time.sleep(0.05)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("module", ["tts_cli.stages.preprocess", "tts_cli.stages.pitch"])
def test_pool_workers_die_when_the_command_is_killed(module):
    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, module], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and not any(_gone(w) for w in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 60  # a safety net, not a timing assertion
        while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(w) for w in workers), "orphaned workers still running"
    finally:
        if parent.poll() is None:
            parent.kill()


# ----------------------------------------------------------------------------- defect 4

def test_read_only_output_folder_is_refused_before_speaking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_refused(cli("synthesize", "hola", "-o", "/proc/h.wav"), "-o /proc/h.wav", "cannot write in /proc")
    assert_refused(cli("preprocess", "nodata", "--out", "/proc/ws"), "--out /proc/ws", "cannot write in /proc")
    if os.geteuid() != 0:  # root writes anywhere: only a read-only mount stops it (the /proc case above)
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert_refused(cli("synthesize", "hola", "-o", ro / "h.wav"), "cannot write in")
        finally:
            ro.chmod(0o700)


@pytest.mark.skipif(HAS_CUDA, reason="needs a CPU-only torch")
def test_device_cuda_without_cuda_is_one_line(tmp_path):
    work = make_workspace(tmp_path / "work", n_utts=4, n_val=1)
    result = cli("train", work, "--out", tmp_path / "run", "--device", "cuda", "--steps", "1")
    assert_refused(result, "CUDA is not available", "--device cpu")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- defect 5

def test_text_outside_the_language_is_left_out_not_read_aloud():
    from tts_cli.text import text_to_symbols
    from tts_cli.text.normalize import split_unspeakable

    assert split_unspeakable("你好，世界", "es") == ("，", "你好世界")
    assert split_unspeakable("hola 😀 amigo 👍🏽", "es") == ("hola amigo", "😀👍🏽")
    assert split_unspeakable("Привет, hola", "es") == (", hola", "Привет")
    assert split_unspeakable("Привет", "ru") == ("Привет", "")
    assert split_unspeakable("niño, Straße, œuvre, 1º", "es")[1] == ""
    r = text_to_symbols("你好，世界", "es")
    assert r.symbols == [] and r.dropped == "你好世界"
    r = text_to_symbols("hola 😀", "es")
    assert r.dropped == "😀" and "".join(r.symbols).replace("ˈ", "") == "ola"


def test_synthesis_warns_about_left_out_characters(tmp_path, monkeypatch):
    monkeypatch.delenv("TTS_VOICES_DIR", raising=False)
    out = tmp_path / "h.wav"
    result = cli("synthesize", "hola 😀 amigo", "-o", out)
    assert result.exit_code == 0, result.output
    assert "left out 1 character(s) that a voice in language es cannot speak" in result.output
    assert "😀" in result.output
    assert out.read_bytes()[:4] == b"RIFF"


def test_preprocess_rejects_transcripts_in_another_script(tmp_path):
    from tts_cli.stages.preprocess import preprocess
    from tts_cli.workspace import read_jsonl

    data = write_ljspeech(tmp_path / "data", [("ok", "hola mundo", tone(seconds=0.6)),
                                              ("zh", "你好，世界", tone(seconds=0.6))])
    preprocess(data, tmp_path / "ws", workers=1, progress=False)
    assert [r["id"] for r in read_jsonl(tmp_path / "ws" / "manifest.jsonl")] == ["ok"]
    (rej,) = [r for r in read_jsonl(tmp_path / "ws" / "rejected.jsonl") if r["id"] == "zh"]
    assert "cannot speak" in rej["reason"] and "你" in rej["reason"]


# ----------------------------------------------------------------------------- defect 6

def test_recipe_settings_are_checked_where_they_enter(tmp_path):
    from tts_cli.errors import TrainConfigError
    from tts_cli.training.run import train_settings

    for bad, word in (({"steps": 0}, "steps 0"), ({"lr": float("nan")}, "lr nan"), ({"warmup": -1}, "warmup -1"),
                      ({"optimizer": "sgd"}, "optimizer 'sgd'"), ({"amp": "fp8"}, "amp 'fp8'")):
        with pytest.raises(TrainConfigError, match=word):
            train_settings(bad)
    assert train_settings({"steps": 5, "lr": 1e-3}).steps == 5
    assert not math.isnan(train_settings({}).lr)


def test_a_pickled_vocoder_gets_our_message_not_torchs_advice(user):
    from tts_cli.errors import VocoderError
    from tts_cli.inference.vocoders import load_vocoder

    with pytest.raises(VocoderError) as e:
        load_vocoder(user / "pickled.pt")
    assert "pickled Python objects" in str(e.value) and "weights_only=False" not in str(e.value)


# ----------------------------------------------------------------------------- defect 8

@pytest.mark.parametrize("ext,fmt", [(".mp3", "MP3"), (".flac", "FLAC"), (".ogg", "OGG"), (".wav", "WAV")])
def test_output_format_follows_the_extension(tmp_path, ext, fmt):
    import soundfile as sf

    from tts_cli.audio import audio_format, save_audio

    try:
        audio_format(tmp_path / f"x{ext}")
    except Exception as e:  # an older libsndfile without MP3: refused by name, never WAV bytes
        assert ext == ".mp3" and "cannot write MP3" in str(e)
        return
    path = save_audio(tmp_path / f"x{ext}", tone(seconds=0.5) * 0.5, 22050)
    info = sf.info(str(path))
    assert info.format == fmt and info.samplerate == 22050 and info.channels == 1
    assert abs(info.duration - 0.9) < 0.1


def test_synthesize_writes_mp3_for_an_mp3_name(tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.delenv("TTS_VOICES_DIR", raising=False)
    if "MPEG_LAYER_III" not in sf.available_subtypes("MP3"):
        pytest.skip("this libsndfile cannot write MP3")
    out = tmp_path / "x.mp3"
    result = cli("synthesize", "hola", "-o", out)
    assert result.exit_code == 0, result.output
    assert sf.info(str(out)).format == "MP3" and out.read_bytes()[:4] != b"RIFF"
