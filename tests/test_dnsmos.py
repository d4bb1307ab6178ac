"""DNSMOS in `tts evaluate`: the plumbing with a stand-in scorer, and the real models when the
[eval] extra (speechmos + onnxruntime) is installed."""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tts_cli.evaluation import dnsmos

SR = 22050


def _tone(seconds=1.0, sr=SR, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_score_resamples_to_16k_clips_and_names_the_keys():
    seen = {}

    def fake_run(wav, sr):
        seen.update(sr=sr, n=len(wav), dtype=wav.dtype, peak=float(np.abs(wav).max()))
        return {"p808_mos": 3.5, "ovrl_mos": 3.1, "sig_mos": 3.4, "bak_mos": 4.0, "filename": "x"}

    out = dnsmos.score(_tone(amp=1.4), SR, run=fake_run)
    assert out == {"dnsmos_p808": 3.5, "dnsmos_ovrl": 3.1, "dnsmos_sig": 3.4, "dnsmos_bak": 4.0}
    assert seen["sr"] == 16000 and abs(seen["n"] - 16000) <= 2 and seen["dtype"] == np.float32
    assert seen["peak"] <= 1.0
    with pytest.raises(ValueError, match="empty"):
        dnsmos.score(np.zeros(0), SR, run=fake_run)


def test_missing_speechmos_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "speechmos", None)
    with pytest.raises(dnsmos.DNSMOSUnavailable, match=r"\[eval\]"):
        dnsmos.load_dnsmos()


class ToneSynth:
    def synthesize(self, text, speaker=None):
        wav = _tone(0.5 + 0.05 * len(text))
        return SimpleNamespace(wav=wav, sample_rate=SR, rtf=0.1, symbols=None, durations=None)


def _texts(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Hola.\nBuenos días a todos.\n", encoding="utf-8")
    return p


def test_evaluate_reports_dnsmos_beside_the_other_metrics(tmp_path, monkeypatch):
    from tts_cli.stages.evaluate import evaluate

    calls = []

    def fake_scorer(wav, sr):
        calls.append(sr)
        return {"dnsmos_p808": 3.0 + len(wav) / sr / 10, "dnsmos_ovrl": 2.9, "dnsmos_sig": 3.2, "dnsmos_bak": 3.9}

    monkeypatch.setattr(dnsmos, "load_dnsmos", lambda: fake_scorer)
    rep = evaluate(ToneSynth(), texts=_texts(tmp_path), asr="none", out=tmp_path / "r", progress=False)
    assert len(calls) == 2
    assert {"dnsmos_p808", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"} <= set(rep["summary"])
    assert rep["summary"]["dnsmos_ovrl"]["mean"] == pytest.approx(2.9)
    assert all("dnsmos_p808" in u for u in rep["utterances"]) and "skipped" not in rep["dnsmos"]
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["summary"]["dnsmos_p808"]["n"] == 2


def test_evaluate_without_dnsmos_says_why(tmp_path, monkeypatch):
    from tts_cli.stages.evaluate import evaluate

    def unavailable():
        raise dnsmos.DNSMOSUnavailable("DNSMOS needs the speechmos package; pip install -e '.[eval]'")

    monkeypatch.setattr(dnsmos, "load_dnsmos", unavailable)
    rep = evaluate(ToneSynth(), texts=_texts(tmp_path), asr="none", out=tmp_path / "r", progress=False)
    assert "speechmos" in rep["dnsmos"]["skipped"] and "dnsmos_p808" not in rep["summary"]
    rep = evaluate(ToneSynth(), texts=_texts(tmp_path), asr="none", out=tmp_path / "r2", progress=False,
                   dnsmos=False)
    assert rep["dnsmos"]["skipped"] == "--no-dnsmos"


def test_real_dnsmos_models_score_a_clip():
    pytest.importorskip("speechmos")
    pytest.importorskip("onnxruntime")
    out = dnsmos.load_dnsmos()(_tone(2.0), SR)
    assert set(out) == {"dnsmos_p808", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert all(1.0 <= v <= 5.0 for v in out.values())
