"""`tts train --eval-every N`: quick objective evaluation during training, best.pt by a chosen metric."""
from __future__ import annotations

import math
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers_workspace import make_workspace, read_metrics  # noqa: E402
from test_training import cfg, run_train  # noqa: E402  (the same micro model and settings)


@pytest.fixture()
def work(tmp_path):
    return make_workspace(tmp_path / "work", n_utts=10, n_val=2)


def ckpt(run, name="best.pt") -> dict:
    return torch.load(Path(run) / "checkpoints" / name, map_location="cpu", weights_only=True)


def interrupt_at(n):
    def hook(step, loss):
        if step == n:
            os.kill(os.getpid(), signal.SIGINT)
        return loss
    return hook


def scripted_evaluation(monkeypatch, mcd_by_step: dict, calls: list | None = None):
    """Replace FastPitch's quick evaluation by fixed MCD values per step. It also draws from every
    global RNG, as a recogniser or vocoder might: the loop must put the streams back."""
    from tts_cli.training.fastpitch_task import FastPitchTask

    def fake(self, model, step):
        if calls is not None:
            calls.append((step, model.training, type(model).__name__))
        torch.rand(7), np.random.rand(3), random.random()
        return {"mcd": mcd_by_step.get(step), "dur_mae": 1.5, "cer": None, "cer_folded": None, "n": np.int64(2)}

    monkeypatch.setattr(FastPitchTask, "evaluate", fake)


# ----------------------------------------------------------------------------- the real evaluation

def test_eval_rows_at_eval_steps_with_finite_numbers(work, tmp_path):
    run = tmp_path / "run"
    s = run_train(work, run, cfg(10, eval_every=4, eval_utterances=1, val_every=5, val_samples=0))
    assert s["stopped"] == "finished"
    rows = read_metrics(run, "eval")
    assert [r["step"] for r in rows] == [4, 8, 10]  # every 4 steps and the last step
    for r in rows:
        assert math.isfinite(r["mcd"]) and r["mcd"] > 0 and math.isfinite(r["dur_mae"]) and r["dur_mae"] >= 0
        assert r["cer"] is None and r["n"] == 1 and "epoch" in r
    assert [r["step"] for r in read_metrics(run, "val")] == [5, 10]  # validation cadence unchanged
    assert len(read_metrics(run)) == 10
    # best_metric defaults to the validation loss
    best = ckpt(run)
    assert best["best_metric"] == "loss" and best["best_metric_value"] == pytest.approx(best["best_val_loss"])


def test_best_pt_follows_mcd_of_the_real_evaluation(work, tmp_path):
    run = tmp_path / "run"
    s = run_train(work, run, cfg(8, eval_every=2, eval_utterances=1, val_every=0, best_metric="mcd"))
    rows = read_metrics(run, "eval")
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    lowest = min(rows, key=lambda r: r["mcd"])
    best = ckpt(run)
    assert best["step"] == lowest["step"] and best["best_metric"] == "mcd"
    assert best["best_metric_value"] == pytest.approx(lowest["mcd"])
    assert s["best_metric"] == "mcd" and s["best_metric_value"] == pytest.approx(lowest["mcd"])
    assert ckpt(run, "last.pt")["best_metric_value"] == pytest.approx(lowest["mcd"])


# ----------------------------------------------------------------------------- best.pt by a metric

def test_best_pt_is_the_lowest_mcd_not_the_lowest_loss(work, tmp_path, monkeypatch):
    calls = []
    # the validation loss keeps falling; the MCD is lowest at step 4, missing at step 8
    scripted_evaluation(monkeypatch, {2: 3.0, 4: 1.0, 6: 2.0, 10: 1.5}, calls)
    run = tmp_path / "run"
    run_train(work, run, cfg(10, lr=0.1, eval_every=2, val_every=2, val_samples=0, best_metric="mcd"))
    assert [c[0] for c in calls] == [2, 4, 6, 8, 10]
    assert all(not training and name == "FastPitch" for _, training, name in calls)  # bare model, eval mode
    best = ckpt(run)
    assert best["step"] == 4 and best["best_metric"] == "mcd" and best["best_metric_value"] == 1.0
    val = read_metrics(run, "val")
    assert min(val, key=lambda r: r["loss"])["step"] != 4  # so best.pt did not follow the loss
    eval_rows = read_metrics(run, "eval")
    assert [r["mcd"] for r in eval_rows] == [3.0, 1.0, 2.0, None, 1.5] and eval_rows[0]["n"] == 2


def test_resume_keeps_the_best_of_the_chosen_metric(work, tmp_path, monkeypatch):
    scripted_evaluation(monkeypatch, {2: 1.0, 4: 5.0, 6: 4.0})
    run = tmp_path / "run"
    first = run_train(work, run, cfg(6, eval_every=2, best_metric="mcd"), _hooks={"after_loss": interrupt_at(3)})
    assert first["stopped"] == "interrupted" and ckpt(run, "last.pt")["best_metric_value"] == 1.0
    second = run_train(work, run, None, resume=True)
    assert second["step"] == 6
    best = ckpt(run)
    assert best["step"] == 2 and best["best_metric_value"] == 1.0  # 5.0 and 4.0 never beat the saved best


def test_evaluation_does_not_change_training(work, tmp_path, monkeypatch):
    """Even an evaluation that draws random numbers leaves the loss curve identical."""
    plain = run_train(work, tmp_path / "plain", cfg(6))
    scripted_evaluation(monkeypatch, {2: 1.0, 4: 2.0, 6: 3.0})
    evald = run_train(work, tmp_path / "eval", cfg(6, eval_every=2))
    assert plain["step"] == evald["step"] == 6
    assert len(read_metrics(tmp_path / "eval", "eval")) == 3
    for a, b in zip(read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "eval")):
        assert b["total"] == a["total"], a["step"]


def test_resume_with_eval_on_equals_uninterrupted_run(work, tmp_path):
    config = cfg(11, val_every=4, val_samples=0, eval_every=3, eval_utterances=1, best_metric="mcd")
    direct = run_train(work, tmp_path / "direct", config)
    first = run_train(work, tmp_path / "resumed", config, _hooks={"after_loss": interrupt_at(5)})
    assert first["stopped"] == "interrupted" and first["step"] == 5
    second = run_train(work, tmp_path / "resumed", None, resume=True)
    assert second["step"] == direct["step"] == 11

    a, b = read_metrics(tmp_path / "direct"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in b] == list(range(1, 12))
    for ra, rb in zip(a, b):
        assert rb["total"] == pytest.approx(ra["total"], abs=1e-6), ra["step"]
    ea, eb = read_metrics(tmp_path / "direct", "eval"), read_metrics(tmp_path / "resumed", "eval")
    assert [r["step"] for r in ea] == [r["step"] for r in eb] == [3, 6, 9, 11]
    for ra, rb in zip(ea, eb):
        assert rb["mcd"] == pytest.approx(ra["mcd"], abs=1e-4) and rb["dur_mae"] == pytest.approx(ra["dur_mae"])
    ba, bb = ckpt(tmp_path / "direct"), ckpt(tmp_path / "resumed")
    assert ba["step"] == bb["step"] and bb["best_metric_value"] == pytest.approx(ba["best_metric_value"], abs=1e-4)
    wa, wb = ckpt(tmp_path / "direct", "last.pt")["model"], ckpt(tmp_path / "resumed", "last.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- settings and CLI

def test_bad_best_metric_settings_are_rejected_clearly():
    from tts_cli.errors import TrainConfigError
    from tts_cli.training.run import train_settings

    with pytest.raises(TrainConfigError, match="best_metric 'wer': use one of loss, mcd, cer, cer_chars, dur_mae"):
        train_settings({"best_metric": "wer", "eval_every": 5})
    with pytest.raises(TrainConfigError, match="eval_every"):
        train_settings({"best_metric": "mcd"})  # nothing would ever measure it
    with pytest.raises(TrainConfigError, match="eval_asr"):
        train_settings({"best_metric": "cer", "eval_every": 5})  # CER needs a recogniser
    with pytest.raises(TrainConfigError, match="eval_every must be >= 0"):
        train_settings({"eval_every": -1})
    s = train_settings({"eval_every": 5}, best_metric="dur_mae", eval_asr=None)
    assert (s.eval_every, s.best_metric, s.eval_asr, s.eval_utterances) == (5, "dur_mae", "none", 4)


def test_cli_options(work, tmp_path):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    r = CliRunner().invoke(app, ["train", str(work), "--out", str(tmp_path / "run"), "--eval-every", "2",
                                 "--best-metric", "wer"])
    assert r.exit_code == 1 and "best_metric 'wer'" in r.output and not (tmp_path / "run").exists()
    r = CliRunner().invoke(app, ["train", str(work), "--model", "hifigan", "--out", str(tmp_path / "v"),
                                 "--eval-every", "2"])
    assert r.exit_code == 1 and "--eval-every" in r.output


# ----------------------------------------------------------------------------- the end-of-run check

def test_finished_run_reports_the_held_out_check_on_the_validation_split(work, tmp_path):
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    s = run_train(work, tmp_path / "run", cfg(6, val_every=3, val_samples=0), console=Console(file=out, width=200))
    held = s["held_out"]
    assert held["n"] == 2 and math.isfinite(held["mcd"]) and held["mcd"] > 0
    assert held["checkpoint"].endswith(("best.pt", "last.pt"))
    assert "held-out check" in out.getvalue() and "2 held-out utterances" in out.getvalue()


def held_out_run(work, tmp_path, monkeypatch, heard_recordings):
    """A 4-step run whose held-out check scores the voice at 55 % (character-weighted) and the
    val recordings as `heard_recordings(text)` makes them heard; returns (summary, console text)."""
    from io import StringIO

    from rich.console import Console

    import tts_cli.evaluation.held_out as held_out
    from tts_cli.workspace import Workspace

    monkeypatch.setattr(held_out, "evaluate_checkpoint_quick", lambda *a, **k: {
        "mcd": 9.0, "dur_mae": 3.0, "cer": 0.7, "cer_folded": 0.5, "cer_chars": 0.55, "n": 2})
    ws = Workspace(work)
    ws.wav_path("x").parent.mkdir(exist_ok=True)
    for r in ws.load_manifest("val"):  # the workspace helper writes mels only: give the val clips audio
        sf.write(ws.wav_path(r["id"]), np.zeros(2205, np.float32), 22050)
    val_texts = iter([r["text"] for r in ws.load_manifest("val")])

    class Recogniser:
        def transcribe(self, wav, sample_rate):
            return heard_recordings(next(val_texts))

    monkeypatch.setattr(held_out.asr_module, "load_asr", lambda *a, **k: Recogniser())
    out = StringIO()
    s = run_train(work, tmp_path / "run", cfg(4, val_every=2, val_samples=0), console=Console(file=out, width=400))
    return s, out.getvalue()


def test_held_out_check_warns_when_the_voice_is_not_intelligible(work, tmp_path, monkeypatch):
    s, text = held_out_run(work, tmp_path, monkeypatch, lambda said: said)  # recordings heard word for word
    assert s["held_out"]["cer_chars"] == 0.55 and s["held_out"]["cer_recordings"] == 0.0
    assert "CER 55.0 % of all characters (70.0 % per clip" in text
    assert "your recordings of the same sentences: 0.0 %" in text
    assert "not intelligible" in text


def test_held_out_check_says_when_the_recordings_are_as_hard_for_the_recogniser(work, tmp_path, monkeypatch):
    # the recogniser mishears the real recordings too (every letter wrong): the clips, not the voice
    s, text = held_out_run(work, tmp_path, monkeypatch, lambda said: "".join("x" if c.isalpha() else c for c in said))
    assert s["held_out"]["cer_recordings"] > 0.5
    assert "not intelligible" not in text and "about as hard" in text


def test_char_weighted_cer_counts_characters_not_clips():
    from tts_cli.evaluation.metrics import char_weighted

    # one misheard word (5 characters, 100 %) beside a sentence said right (95 characters)
    assert char_weighted([1.0, 0.0], [5, 95]) == 0.05
    assert char_weighted([], []) is None


def test_held_out_check_without_a_recogniser_names_the_extra_to_install(work, tmp_path, monkeypatch):
    from io import StringIO

    from rich.console import Console

    import tts_cli.evaluation.held_out as held_out
    from tts_cli.errors import ASRUnavailable

    def no_recogniser(*a, **k):
        raise ASRUnavailable("not installed")

    monkeypatch.setattr(held_out.asr_module, "load_asr", no_recogniser)
    monkeypatch.setattr(held_out, "evaluate_checkpoint_quick",
                        lambda *a, **k: {"mcd": 9.0, "dur_mae": 3.0, "cer": None, "cer_folded": None, "n": 2})
    out = StringIO()
    run_train(work, tmp_path / "run", cfg(4, val_every=2, val_samples=0), console=Console(file=out, width=300))
    assert "MCD 9.00 dB" in out.getvalue() and "pip install 'tts-cli[eval]'" in out.getvalue()


def test_auto_recogniser_and_best_metric_follow_what_is_installed(monkeypatch):
    import importlib.util

    from tts_cli.evaluation.asr import resolve_asr_name
    from tts_cli.training.fastpitch_job import _resolve_auto_eval

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faster_whisper" else real(name, *a))
    assert resolve_asr_name("auto") == "none"
    assert _resolve_auto_eval({"eval_asr": "auto", "best_metric": "auto"}, None, None) == ("none", "mcd")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert resolve_asr_name("auto") == "whisper-base"
    assert _resolve_auto_eval({"eval_asr": "auto", "best_metric": "auto"}, None, None) == ("whisper-base", "cer_chars")
    # the command line wins over the recipe
    assert _resolve_auto_eval({"eval_asr": "auto", "best_metric": "auto"}, "none", "loss") == ("none", "loss")


def test_eval_vocoder_is_what_the_cer_listens_through(work, tmp_path, monkeypatch):
    """eval_vocoder universal: the evaluation's and the held-out check's CER hear the universal
    HiFi-GAN (what `tts synthesize` speaks through), not Griffin-Lim; a vocoder that cannot be
    loaded stops the run before training."""
    from io import StringIO

    from rich.console import Console

    import tts_cli.evaluation.asr as asr_module
    from tts_cli.errors import TrainConfigError
    from tts_cli.inference.vocoders import HiFiGANVocoder

    heard = []

    class Recognizer:
        def transcribe(self, wav, sample_rate):
            heard.append(len(wav))
            return "hola"

    monkeypatch.setattr(asr_module, "load_asr", lambda name, **kw: Recognizer() if name != "none" else None)
    vocoded = []
    real_call = HiFiGANVocoder.__call__
    monkeypatch.setattr(HiFiGANVocoder, "__call__", lambda self, mel: vocoded.append(mel.shape) or real_call(self, mel))
    out = StringIO()
    config = cfg(4, val_every=2, val_samples=0, eval_every=2, eval_asr="whisper-base", best_metric="cer",
                 eval_vocoder="universal")
    s = run_train(work, tmp_path / "run", config, console=Console(file=out, width=200))
    assert vocoded and len(heard) == len(vocoded)  # every CER came from HiFi-GAN audio
    assert all(n == shape[1] * 256 for n, shape in zip(heard, vocoded))
    assert s["held_out"]["cer"] is not None and "universal HiFi-GAN" in out.getvalue()

    with pytest.raises(TrainConfigError, match="eval_vocoder"):
        run_train(work, tmp_path / "run2", {**config, "train": {**config["train"], "eval_vocoder": str(tmp_path / "none.pt")}})
    assert not (tmp_path / "run2" / "checkpoints").exists()


def test_evaluation_scores_the_wordiest_validation_utterances():
    """Single words make a noisy CER (a recogniser mis-hears "seven" alone): the quick evaluation
    that picks best.pt takes the validation utterances with the most words."""
    from types import SimpleNamespace

    from tts_cli.training.fastpitch_task import FastPitchTask

    rows = [{"id": "a", "text": "seven"}, {"id": "b", "text": "press one to record"},
            {"id": "c", "text": "paused"}, {"id": "d", "text": "your message has been saved"},
            {"id": "e", "text": "press two"}]
    task = SimpleNamespace()
    FastPitchTask.enable_evaluation(task, "work", rows, ["a"], {"default": 0}, asr="none", limit=3)
    assert [r["id"] for r in task._eval["rows"]] == ["d", "b", "e"]
