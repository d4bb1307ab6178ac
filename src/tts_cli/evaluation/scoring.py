"""One utterance of `tts evaluate`: synthesise, transcribe and score it against its text and,
for workspace utterances, against the reference recording (signal metrics, per-symbol durations).
Definitions of every metric: `tts_cli.evaluation.metrics`."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tts_cli.audio import limit_to_recorded_band, load_audio, resample, save_wav
from tts_cli.checkpoints.format import CheckpointHeader
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.evaluation.metrics import (
    duration_mae_frames,
    duration_stats,
    f0_level_range,
    f0_rmse_cents,
    log_mel,
    mcd_dtw_mels,
    text_scores,
)
from tts_cli.f0 import extract_f0


class DurationModel:
    """FastPitch durations predicted for the *reference* symbols of an utterance."""

    def __init__(self, model, symbols: Sequence[str], speakers: dict | None, device):
        self.model = model.eval()
        self.index = {s: i for i, s in enumerate(symbols)}
        self.speakers = {str(k): int(v) for k, v in (speakers or {}).items()}
        self.device = device

    @classmethod
    def from_synthesizer(cls, synth) -> "DurationModel | None":
        """Reuse the synthesizer's FastPitch (tts_cli.inference.synthesizer.Synthesizer has model/table/speakers)."""
        model, table = getattr(synth, "model", None), getattr(synth, "table", None)
        if model is None or not hasattr(model, "infer") or table is None:
            return None
        return cls(model, list(table.symbols), getattr(synth, "speakers", None), next(model.parameters()).device)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | dict, device: str) -> "DurationModel":
        """From a checkpoint file, or a checkpoint dict already loaded."""
        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        model = build_fastpitch(ckpt, aligner=False, strict=False).to(device)
        header = CheckpointHeader.of(ckpt)
        return cls(model, header.symbols or [], header.speakers, device)

    def durations(self, symbols: Sequence[str], speaker: str | None) -> np.ndarray:
        import torch

        unknown = sorted({s for s in symbols if s not in self.index})
        if unknown:
            raise ValueError(f"symbols unknown to the model: {' '.join(unknown)}")
        ids = torch.tensor([[self.index[s] for s in symbols]], device=self.device)
        spk_t = None
        if getattr(self.model, "speaker_emb", None) is not None:
            spk_t = torch.tensor([self.speakers.get(str(speaker), 0)], device=self.device)
        out = self.model.infer(ids, speakers=spk_t)
        return out["durations"][0, : len(symbols)].cpu().numpy()


# ----------------------------------------------------------------------------- one utterance

def _as_numpy(x) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def score_utterance(item: dict, synth, asr, ctx: dict) -> tuple[dict, dict | None]:
    """(record, plot data or None) for one utterance; raises on a problem with this utterance."""
    uid, text = item["id"], item["text"]
    sr, language = ctx["sample_rate"], ctx["language"]
    rec: dict[str, Any] = {"id": uid, "speaker": item.get("speaker"), "text": text}
    spk = item.get("speaker") if ctx["speakers"] and item.get("speaker") in ctx["speakers"] else None

    t0 = time.perf_counter()
    res = synth.synthesize(text, speaker=spk)
    elapsed = time.perf_counter() - t0
    wav = _as_numpy(res.wav).astype(np.float32).reshape(-1)
    if int(res.sample_rate) != sr:
        wav = resample(wav, int(res.sample_rate), sr)
    syn_s = len(wav) / sr
    rec["syn_seconds"] = syn_s
    rec["rtf"] = _finite(getattr(res, "rtf", None)) or (elapsed / syn_s if syn_s > 0 else None)
    wav_path = ctx["out"] / "wavs" / f"{uid}.wav"
    save_wav(wav_path, wav, sr)
    rec["wav"] = str(wav_path.relative_to(ctx["out"]))

    if ctx.get("dnsmos") is not None:
        rec.update(ctx["dnsmos"](wav, sr))
    if asr is not None:
        hyp = asr.transcribe(wav, sr)
        s = text_scores(text, hyp, language)
        rec.update(hyp=hyp, cer=s["cer"], cer_folded=s["cer_folded"], wer=s["wer"], text_scored=s["ref_normalized"])

    ref_path = item.get("ref_wav")
    if ref_path is None:
        return rec, None
    ref = load_audio(ref_path, sr)
    if ctx.get("dnsmos") is not None:
        rec.update({f"ref_{k}": v for k, v in ctx["dnsmos"](ref, sr).items()})
    if asr is not None:
        ref_hyp = asr.transcribe(ref, sr)
        s = text_scores(text, ref_hyp, language)
        rec.update(ref_hyp=ref_hyp, ref_cer=s["cer"], ref_cer_folded=s["cer_folded"], ref_wer=s["wer"])

    ref_mel, syn_mel = log_mel(ref, sr, ctx["audio_cfg"]), log_mel(wav, sr, ctx["audio_cfg"])
    # a telephone recording holds nothing above 4 kHz: compare the band it has
    mcd, path = mcd_dtw_mels(ref_mel, limit_to_recorded_band(syn_mel, item.get("source_sr"), ctx["audio_cfg"]))
    rec["mcd_db"] = mcd

    spk_name = item.get("speaker")
    ref_f0, syn_f0 = _f0(ref, ref_mel.shape[1], spk_name, ctx), _f0(wav, syn_mel.shape[1], spk_name, ctx)
    f0 = f0_rmse_cents(ref_f0, syn_f0, path=path)
    rec.update(f0_rmse_cents=_finite(f0["rmse_cents"]), f0_mean_offset_cents=_finite(f0["mean_offset_cents"]),
               f0_gross_error_rate=_finite(f0["gross_error_rate"]), f0_rmse_cents_fine=_finite(f0["rmse_cents_fine"]),
               voicing_error=_finite(f0["voicing_error"]), both_voiced_frames=f0["both_voiced"])
    for side, track in (("ref", ref_f0), ("syn", syn_f0)):
        lr = f0_level_range(track)
        rec[f"{side}_f0_median_hz"], rec[f"{side}_f0_range_st"] = _finite(lr["median_hz"]), _finite(lr["range_st"])

    symbols = item.get("symbols") or []
    rec.update({k: v for k, v in duration_stats(len(ref) / sr, syn_s, n_units=len(symbols) or None).items()
                if k != "syn_seconds"})

    dur_ref_path = item.get("durations")
    if dur_ref_path is not None and Path(dur_ref_path).exists():
        ref_dur = np.load(dur_ref_path)
        pred, source = None, None
        res_syms = getattr(res, "symbols", None)
        if ctx.get("duration_model") is not None:  # the model's prediction for exactly the reference symbols
            pred, source = ctx["duration_model"].durations(symbols, item.get("speaker")), "model"
        elif res_syms is not None and list(res_syms) == list(symbols) and getattr(res, "durations", None) is not None:
            pred, source = _as_numpy(res.durations).reshape(-1)[: len(symbols)], "synthesis"
        if pred is not None:
            rec["dur_mae_frames"] = duration_mae_frames(pred, ref_dur)
            rec["dur_source"] = source
    plot = {"id": uid, "ref_mel": ref_mel, "syn_mel": syn_mel, "ref_f0": ref_f0, "syn_f0": syn_f0, "path": path}
    return rec, plot


def _f0(wav: np.ndarray, n_frames: int, speaker: str | None, ctx: dict) -> np.ndarray:
    fmin, fmax = ctx["pitch"]["speakers"].get(str(speaker), (None, None))
    return extract_f0(wav, ctx["sample_rate"], ctx["pitch"]["method"], fmin, fmax,
                      hop_length=int(ctx["audio_cfg"].hop_length), n_frames=n_frames)


__all__ = ["DurationModel", "score_utterance"]
