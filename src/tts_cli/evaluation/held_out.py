"""The end-of-training answer to "did it work?": the chosen checkpoint speaks every held-out
(validation) utterance of the user's own data, scored by a recogniser (CER) or by MCD, with a
clear warning when the voice is not intelligible."""
from __future__ import annotations

from pathlib import Path

from tts_cli.audio import load_audio
from tts_cli.checkpoints.format import CheckpointHeader
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.config import audio_config
from tts_cli.errors import ASRUnavailable
from tts_cli.evaluation import asr as asr_module
from tts_cli.evaluation.metrics import char_weighted, text_scores
from tts_cli.evaluation.quick import evaluate_checkpoint_quick
from tts_cli.workspace import Workspace

# intelligibility a user can rely on: Whisper base reads clean real speech at ~1-4 % CER
INTELLIGIBLE_CER = 0.10
# within this of the recordings' own CER, a high CER says more about the clips than about the voice
RECORDINGS_MARGIN = 0.05


def held_out_check(ws: Workspace, summary: dict, meta: dict, asr: str, console, vocoder=None) -> dict | None:
    """The user's answer to "did it work?": the best checkpoint speaks every validation
    utterance of their own data (never trained on), scored by CER with a recogniser, else by MCD.
    A clear warning when the voice is not intelligible. `vocoder`: the evaluation's (None = Griffin-Lim)."""
    path = summary.get("best_checkpoint") or summary.get("last_checkpoint")
    rows = ws.load_manifest("val")
    if not path or not rows:
        return None
    header = CheckpointHeader.of(meta)
    language = header.language
    try:  # the run's recogniser, else whichever is installed
        recognizer = asr_module.load_asr(asr if asr not in (None, "none") else "auto", language=language, threads=2)
    except ASRUnavailable:
        recognizer = None
    model = build_fastpitch(load_checkpoint(path))
    result = evaluate_checkpoint_quick(model, ws.root, rows, symbols=header.symbols, speakers=header.speakers,
                                       asr=recognizer, language=language, limit=len(rows), vocoder=vocoder)
    result["checkpoint"] = str(path)
    if recognizer is not None:
        result["cer_recordings"] = recordings_cer(ws, rows, recognizer, language)
    # the character-weighted CER: a validation split of short prompts ("seven", "Friday") holds
    # one-word clips that a recogniser mishears whoever speaks them; averaged per clip, they
    # decided the figure (Italian Asterisk prompts: 26 % per clip, 10.9 % over all characters)
    n, cer, mcd = result["n"], result.get("cer_chars"), result.get("mcd")
    where = f"{Path(path).name} on {n} held-out utterances of your data (the validation split)"
    if cer is not None:
        heard = "Griffin-Lim" if vocoder is None else " ".join(filter(None, (vocoder.label, "HiFi-GAN")))
        own = result.get("cer_recordings")
        console.print(f"[bold]held-out check[/] {where}: CER {100 * cer:.1f} % of all characters "
                      f"({100 * result['cer']:.1f} % per clip; Whisper base, {heard})"
                      + (f", MCD {mcd:.2f} dB" if mcd is not None else "")
                      + (f"; your recordings of the same sentences: {100 * own:.1f} %" if own is not None else ""),
                      highlight=False)
        if cer > INTELLIGIBLE_CER and own is not None and cer <= own + RECORDINGS_MARGIN:
            console.print(f"note: the recogniser finds your own recordings of these clips about as hard "
                          f"({100 * own:.0f} %): short or unusual prompts; judge the voice by listening to "
                          f"{Path(path).parent.parent}/samples", highlight=False)
        elif cer > INTELLIGIBLE_CER:
            console.print(f"[bold yellow]warning:[/] the voice is not intelligible yet (CER {100 * cer:.1f} % > "
                          f"{100 * INTELLIGIBLE_CER:.0f} %): listen to {Path(path).parent.parent}/samples, check "
                          "WORK/align_report.jsonl, or train longer / on more data", highlight=False)
    elif mcd is not None:
        console.print(f"[bold]held-out check[/] {where}: MCD {mcd:.2f} dB; for an intelligibility score (CER) "
                      "install the \\[eval] extra (pip install 'tts-cli\\[eval]')", highlight=False)
    return result


def recordings_cer(ws: Workspace, rows: list[dict], recognizer, language: str) -> float | None:
    """Character-weighted CER of the recogniser on the real recordings of `rows` (WORK/wavs): the
    floor a copy of the voice can reach on these sentences (short or unusual prompts are hard for
    the recogniser too, whoever speaks them)."""
    sample_rate = int(audio_config(ws.load_config()).sample_rate)
    cers, chars = [], []
    for r in rows:
        wav_path = ws.wav_path(r["id"])
        if wav_path.exists():
            scores = text_scores(r["text"], recognizer.transcribe(load_audio(wav_path, sample_rate), sample_rate),
                                 language)
            cers.append(scores["cer"])
            chars.append(len(scores["ref_normalized"]))
    return char_weighted(cers, chars)
