"""`tts evaluate` reads the voice checkpoint once: the language comes from the dict the synthesizer
already loaded, not from a second torch.load of a (possibly large) file."""
from __future__ import annotations

import math

import torch


def _voice(path, language: str):
    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig

    symbols = ["_", " ", ".", "a", "p", "t"]
    cfg = FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": len(symbols), "aligner": False, "d_model": 32,
                                     "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 32, "decoder_ff": 32})
    torch.manual_seed(0)
    model = FastPitch(cfg)
    with torch.no_grad():  # 3 frames per symbol whatever the input
        model.duration_predictor.fc.weight.zero_()
        model.duration_predictor.fc.bias.fill_(math.log(1 + 3))
    text = {"language": language, "text_type": "phonemes", "normalize": False, "keep_stress": True}
    return save_checkpoint(path, model.state_dict(), cfg.to_dict(), symbols, 0, text=text, audio={},
                           pitch_stats={"corpus": {"mean": 150.0, "std": 30.0}}, speakers={"default": 0})


def test_evaluate_loads_the_checkpoint_once_and_takes_its_language(tmp_path, monkeypatch):
    from tts_cli.stages.evaluate import evaluate

    ckpt = _voice(tmp_path / "voice.pt", language="pt")  # not the "es" fallback: the language must be read
    texts = tmp_path / "texts.txt"
    texts.write_text("pata\ntapa\n", encoding="utf-8")
    loads = []
    real_load = torch.load

    def counting_load(f, *a, **k):
        loads.append(str(f))
        return real_load(f, *a, **k)

    monkeypatch.setattr(torch, "load", counting_load)
    rep = evaluate(ckpt, texts=texts, vocoder="griffin-lim", asr="none", out=tmp_path / "rep", progress=False)
    assert rep["language"] == "pt" and rep["asr"]["language"] == "pt"
    assert rep["n_utterances"] == 2 and not rep["failures"]
    assert loads.count(str(ckpt)) == 1, loads
