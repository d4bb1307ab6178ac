"""`tts evaluate`: objective quality numbers for a trained voice.

For each utterance of a workspace split (or each line of a text file):
- synthesise it, transcribe it with an offline recogniser (`tts_cli.evaluation.asr`) and score CER, WER and
  the accent-folded CER against the text; the reference recording is transcribed too, so the
  report shows the recogniser's own error floor on this data;
- against the reference recording (workspace utterances only): MCD with DTW, F0 RMSE in cents
  and voicing error on the DTW-paired frames (the project's pitch extractor with the workspace's
  pitch settings, on both clips), total-duration and speaking-rate difference;
- per-symbol durations the model predicts for the reference symbols against WORK/durations
  (mean absolute error in frames);
- naturalness: DNSMOS P.808 and P.835 OVRL/SIG/BAK (`tts_cli.evaluation.dnsmos`, the `[eval]` extra) of the
  synthesised clip, and of the reference recording; skipped with a note when not installed.
Writes REPORT_DIR/report.json (every number), REPORT_DIR/wavs/<id>.wav (the synthesised audio)
and REPORT_DIR/compare.png (mel and pitch of a few utterances), and prints a table.
Definitions of every metric: `tts_cli.evaluation.metrics`.
Per-utterance scoring: `tts_cli.evaluation.scoring`; the report's summaries, table and figure:
`tts_cli.evaluation.report`. The cheap variant for validation during training is
`tts_cli.evaluation.quick.evaluate_checkpoint_quick`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from tts_cli.config import AudioConfig, audio_config
from tts_cli.errors import ASRUnavailable, DNSMOSUnavailable, EvaluateError, SynthesisError
from tts_cli.evaluation import asr as asr_module
from tts_cli.evaluation import dnsmos as dnsmos_module
from tts_cli.evaluation.report import (SUMMARY_KEYS, by_speaker, char_weighted_key, json_safe, plot_compare, print_table,
                                       summarize_key)
from tts_cli.evaluation.scoring import DurationModel, score_utterance
from tts_cli.f0 import DEFAULT_METHOD
from tts_cli.inference.synthesizer import Synthesizer
from tts_cli.text.input_file import read_input_file
from tts_cli.workspace import Workspace, atomic_write_json, resolve_checkpoint

log = logging.getLogger(__name__)

N_PLOTS = 3  # utterances drawn in compare.png


# ----------------------------------------------------------------------------- inputs

def default_report_dir(model: str | Path, split: str = "val", texts: str | Path | None = None) -> Path:
    """RUN/eval/<checkpoint>-<split or text file> next to the run that holds the checkpoint."""
    ckpt = Path(model)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run / "eval" / f"{ckpt.stem}-{Path(texts).stem if texts else split}"


def read_texts(path: str | Path) -> list[dict]:
    """One utterance per non-empty line, read as `tts synthesize -i` reads it (`id|text[|...]` lines
    keep their id, others get utt_NNNN; '#' lines are comments)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluateError(f"{path}: no such text file")
    try:
        items = [{"id": uid, "text": text} for uid, text in read_input_file(path)]
    except SynthesisError as e:
        raise EvaluateError(str(e)) from None
    if not items:
        raise EvaluateError(f"{path}: no text lines to evaluate")
    return items


def _pitch_settings(ws) -> dict:
    """The pitch extractor settings the workspace used (method, per-speaker fmin/fmax)."""
    import json

    out = {"method": DEFAULT_METHOD, "speakers": {}}
    if ws is not None and ws.pitch_stats.exists():
        try:
            stats = json.loads(ws.pitch_stats.read_text(encoding="utf-8"))
            out["method"] = stats.get("method") or DEFAULT_METHOD
            for name, s in (stats.get("speakers") or {}).items():
                if isinstance(s, dict) and s.get("fmin") and s.get("fmax"):
                    out["speakers"][name] = (float(s["fmin"]), float(s["fmax"]))
        except (ValueError, OSError) as e:
            log.warning("%s: unreadable (%s); default pitch settings used", ws.pitch_stats, e)
    return out


def _checkpoint_language(synth) -> str | None:
    """The voice's language from the checkpoint dict the synthesizer already loaded (`.ckpt`), else
    its `.language`; never a second torch.load of what can be a large file."""
    ckpt = getattr(synth, "ckpt", None)
    if isinstance(ckpt, dict):
        return (ckpt.get("text") or {}).get("language")
    return getattr(synth, "language", None)


def _open_synthesizer(model, vocoder, device: str):
    """A synthesizer object: `model` itself when it already has `.synthesize`, else tts_cli.inference.synthesizer."""
    if hasattr(model, "synthesize"):
        return model

    return Synthesizer(model, vocoder=vocoder, device=device)


def _synthesizer_speakers(synth) -> list[str] | None:
    for attr in ("speakers", "speaker_names"):
        sp = getattr(synth, attr, None)
        if isinstance(sp, dict):
            return [str(k) for k in sp]
        if isinstance(sp, (list, tuple)):
            return [str(k) for k in sp]
    return None


# ----------------------------------------------------------------------------- main entry

def evaluate(
    model: str | Path | Any,
    data: str | Path | None = None,
    split: str = "val",
    texts: str | Path | None = None,
    vocoder: str | None = None,
    asr: str = "whisper-base",
    out: str | Path | None = None,
    device: str = "cpu",
    limit: int | None = None,
    language: str | None = None,
    asr_threads: int = 1,
    dnsmos: bool = True,
    n_plots: int = N_PLOTS,
    progress: bool = True,
    console=None,
) -> dict:
    """Evaluate a voice; returns the report (also written to OUT/report.json). See the module docstring.

    `model`: a checkpoint path (anything `tts_cli.inference.synthesizer.Synthesizer` accepts) or an object
    with `.synthesize(text, speaker=None)`. `data` + `split`: the workspace utterances with their
    reference recordings; `texts`: a text file instead (intelligibility only). A missing ASR extra
    is reported and the ASR part skipped, and so is a missing DNSMOS (`dnsmos=False` skips it);
    one failing utterance is reported and the rest go on.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    if data is None and texts is None:
        raise EvaluateError("nothing to evaluate: give a workspace (--data) or a text file (--texts)")
    if isinstance(model, (str, Path)):
        model = resolve_checkpoint(model, error=EvaluateError)  # best.pt, else last.pt
    ws = Workspace(data) if data is not None else None
    cfg = ws.load_config() if ws is not None else {}
    audio_cfg = audio_config(cfg) if cfg else AudioConfig()
    items = _load_items(ws, split, texts, limit)

    out = Path(out) if out is not None else (default_report_dir(model, split, texts) if isinstance(model, (str, Path))
                                             else Path("tts_eval"))
    out.mkdir(parents=True, exist_ok=True)

    synth = _open_synthesizer(model, vocoder, device)  # the one load of the checkpoint
    language = language or (cfg.get("text") or {}).get("language") or _checkpoint_language(synth) or "es"
    recognizer, asr_info = _load_recognizer(asr, language, device, asr_threads, console)
    scorer, dnsmos_info = _load_dnsmos(dnsmos, console)
    duration_model = _duration_model(ws, synth, model, device)
    ctx = {"sample_rate": int(audio_cfg.sample_rate), "audio_cfg": audio_cfg, "language": language, "out": out,
           "speakers": _synthesizer_speakers(synth), "pitch": _pitch_settings(ws), "duration_model": duration_model,
           "dnsmos": scorer}

    records, plots, failures = _score_all(items, synth, recognizer, ctx, n_plots, progress, console)
    report = {
        "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
        "data": str(ws.root) if ws is not None else None, "split": None if texts else split,
        "texts": str(texts) if texts else None, "vocoder": vocoder, "device": device, "language": language,
        "vocoder_used": _vocoder_used(synth), "asr": asr_info, "dnsmos": dnsmos_info, "pitch_method": ctx["pitch"]["method"], "sample_rate": ctx["sample_rate"],
        "n_utterances": len(records), "failures": failures, "summary": _summary(records), "by_speaker": by_speaker(records),
        "utterances": records,
    }
    if plots:
        _add_plot(report, out, plots)
    atomic_write_json(out / "report.json", json_safe(report))
    print_table(console, report, out)
    return report


def _load_items(ws, split: str, texts: str | Path | None, limit: int | None) -> list[dict]:
    """The utterances to score: the text file's lines, else the workspace split with its references."""
    if texts is not None:
        items = read_texts(texts)
    else:
        rows = ws.load_manifest(split)
        if not rows:
            raise EvaluateError(f"{ws.root}: no utterances in split {split!r}")
        items = [{"id": r["id"], "text": r["text"], "speaker": r.get("speaker"), "symbols": r.get("symbols"),
                  "ref_wav": ws.root / r["audio"] if r.get("audio") else ws.wav_path(r["id"]),
                  "durations": ws.duration_path(r["id"]), "source_sr": r.get("source_sr")} for r in rows]
    if limit:
        items = items[: int(limit)]
    return items


def _load_recognizer(asr: str, language: str, device: str, asr_threads: int, console) -> tuple[Any, dict]:
    """(recogniser or None, the report's `asr` entry); a missing extra skips the ASR part, not the run."""
    from rich.markup import escape


    asr_info: dict[str, Any] = {"name": asr, "language": language}
    recognizer = None
    try:
        recognizer = asr_module.load_asr(asr, language=language, device=device, threads=asr_threads)
    except ASRUnavailable as e:
        asr_info["skipped"] = str(e)
        console.print(f"[yellow]ASR skipped:[/] {escape(str(e))}")
    if recognizer is None and "skipped" not in asr_info:
        asr_info["skipped"] = "--asr none"
    return recognizer, asr_info


def _load_dnsmos(enabled: bool, console) -> tuple[Any, dict]:
    """(DNSMOS scorer or None, the report's `dnsmos` entry); a missing extra skips it, not the run."""
    from rich.markup import escape

    dnsmos_info: dict[str, Any] = {"name": "DNSMOS (speechmos 0.0.1.1: P.808, P.835 SIG/BAK/OVRL), 16 kHz"}
    scorer = None
    if enabled:
        try:
            scorer = dnsmos_module.load_dnsmos()
        except DNSMOSUnavailable as e:
            dnsmos_info["skipped"] = str(e)
            console.print(f"[yellow]DNSMOS skipped:[/] {escape(str(e))}")
    else:
        dnsmos_info["skipped"] = "--no-dnsmos"
    return scorer, dnsmos_info


def _duration_model(ws, synth, model, device: str):
    """The FastPitch that predicts durations for the reference symbols; None without a workspace."""
    if ws is None:
        return None
    duration_model = None
    try:
        duration_model = DurationModel.from_synthesizer(synth)
        if duration_model is None and isinstance(model, (str, Path)):
            duration_model = DurationModel.from_checkpoint(getattr(synth, "ckpt", None) or Path(model), device)
    except Exception as e:  # noqa: BLE001 - durations are one metric among many
        log.warning("per-symbol durations unavailable: %s", e)
    return duration_model


def _score_all(items: list[dict], synth, recognizer, ctx: dict, n_plots: int, progress: bool,
               console) -> tuple[list[dict], list[dict], list[dict]]:
    """(records, plot data of the first `n_plots` with a reference, failures) over all items."""
    from rich.markup import escape

    records, plots, failures = [], [], []
    with _progress(progress, console, len(items)) as advance:
        for item in items:
            try:
                rec, plot = score_utterance(item, synth, recognizer, ctx)
                records.append(rec)
                if plot is not None and len(plots) < n_plots:
                    plots.append(plot)
            except Exception as e:  # noqa: BLE001 - one bad utterance must not stop the report
                msg = f"{item['id']}: {type(e).__name__}: {e}"
                failures.append({"id": item["id"], "error": f"{type(e).__name__}: {e}"})
                console.print(f"[red]skipped[/] {escape(msg)}")
            advance()
    return records, plots, failures


def _summary(records: list[dict]) -> dict:
    summary = {k: summarize_key(records, k) for k in SUMMARY_KEYS if any(r.get(k) is not None for r in records)}
    for key in ("cer", "ref_cer"):  # beside mean / median per clip: over all characters, as the end-of-train check
        if key in summary:
            summary[key]["chars"] = char_weighted_key(records, key)
    return summary


def _add_plot(report: dict, out: Path, plots: list[dict]) -> None:
    try:
        report["plot"] = str(plot_compare(out / "compare.png", plots).relative_to(out))
    except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the numbers
        log.warning("could not draw %s: %s", out / "compare.png", e)


def _vocoder_used(synth) -> str | None:
    voc = getattr(synth, "vocoder", None)
    return voc.describe() if hasattr(voc, "describe") else None


class _progress:
    def __init__(self, enabled: bool, console, total: int):
        self.enabled, self.console, self.total = enabled, console, total

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=self.console, transient=True)
        self.p.__enter__()
        task = self.p.add_task("evaluate", total=self.total)
        return lambda: self.p.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False


__all__ = ["EvaluateError", "evaluate", "default_report_dir", "read_texts"]
