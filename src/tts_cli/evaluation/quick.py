"""The cheap evaluation during training (`eval_every`, the held-out check): a few validation
utterances synthesised free-running and scored at the mel level, plus CER with a recogniser.
Lives here, not in the `tts evaluate` stage, so that training does not import from a stage."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tts_cli.audio import limit_to_recorded_band
from tts_cli.config import audio_config
from tts_cli.evaluation import asr as asr_module
from tts_cli.evaluation.metrics import char_weighted, duration_mae_frames, mcd_dtw_mels, summarize, text_scores
from tts_cli.inference.vocoders import griffin_lim
from tts_cli.workspace import Workspace


def evaluate_checkpoint_quick(
    model_obj,
    work: str | Path,
    rows: Sequence[dict] | None = None,
    *,
    symbols: Sequence[str] | None = None,
    speakers: dict[str, int] | None = None,
    vocoder: Callable | None = None,
    asr: str | Any = "none",
    language: str = "es",
    limit: int = 4,
    asr_threads: int = 1,
) -> dict:
    """Cheap validation-time numbers for a FastPitch module being trained.

    For up to `limit` validation utterances (default: the workspace's val split): free-running
    inference from the manifest symbols; `mcd` = MCD-DTW between the predicted mel and the
    workspace mel (mel level, no vocoder, so it tracks the acoustic model alone); `dur_mae` =
    per-symbol duration MAE in frames; with an ASR (name or loaded recogniser) also `cer` /
    `cer_folded` on audio made by `vocoder(mel [n_mels, T]) -> wav` (default: Griffin-Lim, which
    raises the CER floor; compare runs with the same vocoder). Never touches the global RNGs.
    Returns {"mcd", "dur_mae", "cer", "cer_folded", "cer_chars", "n"} (None where not measured):
    `cer` is the mean of the clips' CERs, `cer_chars` the character-weighted one (all errors over
    all characters), which a one-word clip cannot dominate.
    """
    import torch

    ws = Workspace(work)
    rows = list(rows) if rows is not None else ws.load_manifest("val")
    rows = rows[: max(0, int(limit))]
    symbols = list(symbols) if symbols is not None else ws.load_symbols()
    index = {s: i for i, s in enumerate(symbols)}
    if speakers is None:
        names = sorted({str(r.get("speaker", "default")) for r in ws.load_manifest()})
        speakers = {n: i for i, n in enumerate(names)}
    audio_cfg = audio_config(ws.load_config())
    recognizer = asr_module.load_asr(asr, language=language, threads=asr_threads) if isinstance(asr, str) else asr
    if recognizer is not None and vocoder is None:
        def vocoder(mel):
            return griffin_lim(mel, audio_cfg).numpy()

    device = next(model_obj.parameters()).device
    was_training = model_obj.training
    model_obj.eval()
    mcds, maes, cers, folded, chars = [], [], [], [], []
    try:
        for r in rows:
            ids = torch.tensor([[index[s] for s in r["symbols"]]], device=device)
            spk = None
            if len(speakers) > 1:
                spk = torch.tensor([speakers.get(str(r.get("speaker", "default")), 0)], device=device)
            with torch.no_grad():
                out = model_obj.infer(ids, speakers=spk, max_frames=4 * int(r.get("n_frames", 1000)) + 100)
            n = int(out["mel_lens"][0])
            mel = out["mel"][0, :, : max(n, 1)].float().cpu()
            ref_mel_path = ws.mel_path(r["id"])
            if ref_mel_path.exists():
                mcds.append(mcd_dtw_mels(np.load(ref_mel_path), limit_to_recorded_band(mel.numpy(), r.get("source_sr"), audio_cfg))[0])
            if ws.duration_path(r["id"]).exists():
                pred = out["durations"][0, : len(r["symbols"])].cpu().numpy()
                maes.append(duration_mae_frames(pred, np.load(ws.duration_path(r["id"]))))
            if recognizer is not None:
                wav = np.asarray(vocoder(mel), dtype=np.float32).reshape(-1)
                s = text_scores(r["text"], recognizer.transcribe(wav, int(audio_cfg.sample_rate)), language)
                cers.append(s["cer"])
                folded.append(s["cer_folded"])
                chars.append(len(s["ref_normalized"]))
    finally:
        model_obj.train(was_training)

    def mean(v):
        return summarize(v)["mean"] if v else None

    return {"mcd": mean(mcds), "dur_mae": mean(maes), "cer": mean(cers), "cer_folded": mean(folded),
            "cer_chars": char_weighted(cers, chars), "n": len(rows)}


__all__ = ["evaluate_checkpoint_quick"]
