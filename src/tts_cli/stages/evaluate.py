"""`tts evaluate`: objective quality numbers for a trained voice.

For each utterance of a workspace split (or each line of a text file):
- synthesise it, transcribe it with an offline recogniser (`tts_cli.asr`) and score CER, WER and
  the accent-folded CER against the text; the reference recording is transcribed too, so the
  report shows the recogniser's own error floor on this data;
- against the reference recording (workspace utterances only): MCD with DTW, F0 RMSE in cents
  and voicing error on the DTW-paired frames (the project's pitch extractor with the workspace's
  pitch settings, on both clips), total-duration and speaking-rate difference;
- per-symbol durations the model predicts for the reference symbols against WORK/durations
  (mean absolute error in frames);
- naturalness: DNSMOS P.808 and P.835 OVRL/SIG/BAK (`tts_cli.dnsmos`, the `[eval]` extra) of the
  synthesised clip, and of the reference recording; skipped with a note when not installed.
Writes REPORT_DIR/report.json (every number), REPORT_DIR/wavs/<id>.wav (the synthesised audio)
and REPORT_DIR/compare.png (mel and pitch of a few utterances), and prints a table.
Definitions of every metric: `tts_cli.metrics`.

`evaluate_checkpoint_quick` is the cheap variant for validation during training.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

N_PLOTS = 3  # utterances drawn in compare.png
SUMMARY_KEYS = ("cer", "cer_folded", "wer", "ref_cer", "ref_cer_folded", "ref_wer", "mcd_db", "f0_rmse_cents",
                "f0_gross_error_rate", "f0_rmse_cents_fine", "f0_mean_offset_cents", "voicing_error",
                "duration_diff_s", "duration_ratio", "speaking_rate_diff_pct", "dur_mae_frames", "rtf",
                "syn_f0_median_hz", "ref_f0_median_hz", "syn_f0_range_st", "ref_f0_range_st", "syn_rate", "ref_rate",
                "dnsmos_p808", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "ref_dnsmos_p808", "ref_dnsmos_ovrl")
# per speaker (a multi-speaker voice is only as good as its worst speaker): what a reader compares
SPEAKER_KEYS = ("cer", "ref_cer", "dnsmos_p808", "mcd_db", "syn_f0_median_hz", "ref_f0_median_hz", "syn_f0_range_st",
                "ref_f0_range_st", "speaking_rate_diff_pct", "rtf")


class EvaluateError(RuntimeError):
    """Nothing can be evaluated (no model, no utterances); str() says why."""


# ----------------------------------------------------------------------------- inputs

def default_report_dir(model: str | Path, split: str = "val", texts: str | Path | None = None) -> Path:
    """RUN/eval/<checkpoint>-<split or text file> next to the run that holds the checkpoint."""
    ckpt = Path(model)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run / "eval" / f"{ckpt.stem}-{Path(texts).stem if texts else split}"


def read_texts(path: str | Path) -> list[dict]:
    """One utterance per non-empty line; `id|text` lines keep their id, '#' lines are comments."""
    path = Path(path)
    if not path.is_file():
        raise EvaluateError(f"{path}: no such text file")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        uid, sep, text = line.partition("|")
        if not sep or not uid.strip() or " " in uid.strip():
            uid, text = f"line{n:04d}", line
        items.append({"id": uid.strip(), "text": text.strip()})
    if not items:
        raise EvaluateError(f"{path}: no text lines to evaluate")
    return items


def _pitch_settings(ws) -> dict:
    """The pitch extractor settings the workspace used (method, per-speaker fmin/fmax)."""
    import json

    from tts_cli.pitch import DEFAULT_METHOD

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


def _resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint file, or a run folder's newest best.pt/last.pt (the rule of `tts synthesize`)."""
    p = Path(model)
    if not p.exists():
        raise EvaluateError(f"{p}: no such checkpoint file or run folder")
    if p.is_file():
        return p
    from tts_cli.errors import SynthesisError
    from tts_cli.inference.resolve import resolve_model

    try:
        return Path(resolve_model(p))
    except SynthesisError as e:
        raise EvaluateError(str(e)) from None


def _open_synthesizer(model, vocoder, device: str):
    """A synthesizer object: `model` itself when it already has `.synthesize`, else tts_cli.inference.synthesizer."""
    if hasattr(model, "synthesize"):
        return model
    from tts_cli.inference.synthesizer import Synthesizer

    return Synthesizer(model, vocoder=vocoder, device=device)


def _synthesizer_speakers(synth) -> list[str] | None:
    for attr in ("speakers", "speaker_names"):
        sp = getattr(synth, attr, None)
        if isinstance(sp, dict):
            return [str(k) for k in sp]
        if isinstance(sp, (list, tuple)):
            return [str(k) for k in sp]
    return None


class _DurationModel:
    """FastPitch durations predicted for the *reference* symbols of an utterance."""

    def __init__(self, model, symbols: Sequence[str], speakers: dict | None, device):
        self.model = model.eval()
        self.index = {s: i for i, s in enumerate(symbols)}
        self.speakers = {str(k): int(v) for k, v in (speakers or {}).items()}
        self.device = device

    @classmethod
    def from_synthesizer(cls, synth) -> "_DurationModel | None":
        """Reuse the synthesizer's FastPitch (tts_cli.inference.synthesizer.Synthesizer has model/table/speakers)."""
        model, table = getattr(synth, "model", None), getattr(synth, "table", None)
        if model is None or not hasattr(model, "infer") or table is None:
            return None
        return cls(model, list(table.symbols), getattr(synth, "speakers", None), next(model.parameters()).device)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | dict, device: str) -> "_DurationModel":
        """From a checkpoint file, or a checkpoint dict already loaded."""
        from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint

        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        model = build_fastpitch(ckpt, aligner=False, strict=False).to(device)
        return cls(model, ckpt.get("symbols") or [], ckpt.get("speakers"), device)

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


def _score_one(item: dict, synth, asr, ctx: dict) -> tuple[dict, dict | None]:
    """(record, plot data or None) for one utterance; raises on a problem with this utterance."""
    from tts_cli.audio import load_audio, resample, save_wav
    from tts_cli.metrics import (duration_mae_frames, duration_stats, f0_level_range, f0_rmse_cents, log_mel,
                                 mcd_dtw_mels, text_scores)

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
    mcd, path = mcd_dtw_mels(ref_mel, syn_mel)
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
    from tts_cli.pitch import extract_f0

    fmin, fmax = ctx["pitch"]["speakers"].get(str(speaker), (None, None))
    return extract_f0(wav, ctx["sample_rate"], ctx["pitch"]["method"], fmin, fmax,
                      hop_length=int(ctx["audio_cfg"].hop_length), n_frames=n_frames)


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
    from rich.markup import escape

    from tts_cli.asr import ASRUnavailable, load_asr
    from tts_cli.config import AudioConfig, audio_config
    from tts_cli.workspace import Workspace, atomic_write_json

    console = console or Console(stderr=True)
    if data is None and texts is None:
        raise EvaluateError("nothing to evaluate: give a workspace (--data) or a text file (--texts)")
    if isinstance(model, (str, Path)):
        model = _resolve_checkpoint(model)
    ws = Workspace(data) if data is not None else None
    cfg = ws.load_config() if ws is not None else {}
    audio_cfg = audio_config(cfg) if cfg else AudioConfig()

    if texts is not None:
        items = read_texts(texts)
    else:
        rows = ws.load_manifest(split)
        if not rows:
            raise EvaluateError(f"{ws.root}: no utterances in split {split!r}")
        items = [{"id": r["id"], "text": r["text"], "speaker": r.get("speaker"), "symbols": r.get("symbols"),
                  "ref_wav": ws.root / r["audio"] if r.get("audio") else ws.wav_path(r["id"]),
                  "durations": ws.duration_path(r["id"])} for r in rows]
    if limit:
        items = items[: int(limit)]

    out = Path(out) if out is not None else (default_report_dir(model, split, texts) if isinstance(model, (str, Path))
                                             else Path("tts_eval"))
    out.mkdir(parents=True, exist_ok=True)

    synth = _open_synthesizer(model, vocoder, device)  # the one load of the checkpoint
    language = language or (cfg.get("text") or {}).get("language") or _checkpoint_language(synth) or "es"
    asr_info: dict[str, Any] = {"name": asr, "language": language}
    recognizer = None
    try:
        recognizer = load_asr(asr, language=language, device=device, threads=asr_threads)
    except ASRUnavailable as e:
        asr_info["skipped"] = str(e)
        console.print(f"[yellow]ASR skipped:[/] {escape(str(e))}")
    if recognizer is None and "skipped" not in asr_info:
        asr_info["skipped"] = "--asr none"
    dnsmos_info: dict[str, Any] = {"name": "DNSMOS (speechmos 0.0.1.1: P.808, P.835 SIG/BAK/OVRL), 16 kHz"}
    scorer = None
    if dnsmos:
        from tts_cli.dnsmos import DNSMOSUnavailable, load_dnsmos

        try:
            scorer = load_dnsmos()
        except DNSMOSUnavailable as e:
            dnsmos_info["skipped"] = str(e)
            console.print(f"[yellow]DNSMOS skipped:[/] {escape(str(e))}")
    else:
        dnsmos_info["skipped"] = "--no-dnsmos"

    duration_model = None
    if ws is not None:
        try:
            duration_model = _DurationModel.from_synthesizer(synth)
            if duration_model is None and isinstance(model, (str, Path)):
                duration_model = _DurationModel.from_checkpoint(getattr(synth, "ckpt", None) or Path(model), device)
        except Exception as e:  # noqa: BLE001 - durations are one metric among many
            log.warning("per-symbol durations unavailable: %s", e)
    ctx = {"sample_rate": int(audio_cfg.sample_rate), "audio_cfg": audio_cfg, "language": language, "out": out,
           "speakers": _synthesizer_speakers(synth), "pitch": _pitch_settings(ws), "duration_model": duration_model,
           "dnsmos": scorer}

    records, plots, failures = [], [], []
    with _progress(progress, console, len(items)) as advance:
        for item in items:
            try:
                rec, plot = _score_one(item, synth, recognizer, ctx)
                records.append(rec)
                if plot is not None and len(plots) < n_plots:
                    plots.append(plot)
            except Exception as e:  # noqa: BLE001 - one bad utterance must not stop the report
                msg = f"{item['id']}: {type(e).__name__}: {e}"
                failures.append({"id": item["id"], "error": f"{type(e).__name__}: {e}"})
                console.print(f"[red]skipped[/] {escape(msg)}")
            advance()

    summary = {k: _summary(records, k) for k in SUMMARY_KEYS if any(r.get(k) is not None for r in records)}
    by_speaker = _by_speaker(records)
    report = {
        "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
        "data": str(ws.root) if ws is not None else None, "split": None if texts else split,
        "texts": str(texts) if texts else None, "vocoder": vocoder, "device": device, "language": language,
        "vocoder_used": _vocoder_used(synth), "asr": asr_info, "dnsmos": dnsmos_info, "pitch_method": ctx["pitch"]["method"], "sample_rate": ctx["sample_rate"],
        "n_utterances": len(records), "failures": failures, "summary": summary, "by_speaker": by_speaker,
        "utterances": records,
    }
    if plots:
        try:
            report["plot"] = str(_plot_compare(out / "compare.png", plots).relative_to(out))
        except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the numbers
            log.warning("could not draw %s: %s", out / "compare.png", e)
    atomic_write_json(out / "report.json", _json_safe(report))
    _print_table(console, report, out)
    return report


def _vocoder_used(synth) -> str | None:
    voc = getattr(synth, "vocoder", None)
    return voc.describe() if hasattr(voc, "describe") else None


def _summary(records: list[dict], key: str) -> dict:
    from tts_cli.metrics import summarize

    return summarize([r.get(key) for r in records])


def _by_speaker(records: list[dict]) -> dict:
    """{speaker: {key: mean/median/n}} over SPEAKER_KEYS, when the utterances name speakers."""
    names = sorted({str(r["speaker"]) for r in records if r.get("speaker") is not None})
    return {n: {k: _summary([r for r in records if str(r.get("speaker")) == n], k) for k in SPEAKER_KEYS
                if any(r.get(k) is not None for r in records)} for n in names}


def _json_safe(obj):
    """NaN/inf -> null and numpy scalars -> python, so report.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


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


# ----------------------------------------------------------------------------- output

_COLUMNS = (  # (key, header, format); short headers so the table fits 80 columns
    ("cer", "CER%", lambda v: f"{100 * v:.1f}"),
    ("cer_folded", "CERf%", lambda v: f"{100 * v:.1f}"),
    ("wer", "WER%", lambda v: f"{100 * v:.1f}"),
    ("ref_cer", "refCER%", lambda v: f"{100 * v:.1f}"),
    ("dnsmos_p808", "P808", lambda v: f"{v:.2f}"),
    ("dnsmos_ovrl", "OVRL", lambda v: f"{v:.2f}"),
    ("ref_dnsmos_p808", "refP808", lambda v: f"{v:.2f}"),
    ("mcd_db", "MCD dB", lambda v: f"{v:.2f}"),
    ("f0_rmse_cents", "F0 ¢", lambda v: f"{v:.0f}"),
    ("f0_gross_error_rate", "GPE%", lambda v: f"{100 * v:.1f}"),
    ("voicing_error", "V/UV%", lambda v: f"{100 * v:.1f}"),
    ("duration_diff_s", "Δdur s", lambda v: f"{v:+.2f}"),
    ("speaking_rate_diff_pct", "Δrate%", lambda v: f"{v:+.1f}"),
    ("dur_mae_frames", "durMAE", lambda v: f"{v:.2f}"),
)
_LEGEND = {
    "cer_folded": "CERf = accent-folded CER",
    "ref_cer": "refCER = the recogniser on the reference recording (its floor)",
    "dnsmos_p808": "P808 / OVRL = DNSMOS P.808 / P.835 overall MOS (1-5, a naturalness proxy)",
    "f0_rmse_cents": "F0 ¢ = F0 RMSE in cents where both voice",
    "f0_gross_error_rate": "GPE = share of those frames off by > 20 %",
    "speaking_rate_diff_pct": "Δrate > 0 = faster than the reference",
    "dur_mae_frames": "durMAE = per-symbol duration error in frames",
}


def _print_table(console, report: dict, out: Path, max_rows: int = 40) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    cols = [c for c in _COLUMNS if c[0] in report["summary"]]

    t = Table(title=f"tts evaluate → {out}", caption=_caption(report), box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("utterance", no_wrap=True, overflow="ellipsis", max_width=24)
    for _, header, _ in cols:
        t.add_column(header, justify="right", no_wrap=True)
    recs = report["utterances"]
    for r in recs[:max_rows]:
        t.add_row(escape(r["id"]), *[fmt(r[k]) if r.get(k) is not None else "–" for k, _, fmt in cols])
    if len(recs) > max_rows:
        t.add_row(f"… {len(recs) - max_rows} more in report.json", *[""] * len(cols))
    t.add_section()
    for stat in ("mean", "median"):
        vals = [report["summary"][k][stat] for k, _, _ in cols]
        t.add_row(f"[bold]{stat}[/]", *[fmt(v) if v is not None and math.isfinite(v) else "–"
                                        for v, (_, _, fmt) in zip(vals, cols)])
    console.print(t)
    if len(report.get("by_speaker") or {}) > 1:
        console.print(_speaker_table(report["by_speaker"]))


_SPEAKER_COLUMNS = (  # (key, header, format) of the per-speaker means
    ("cer", "CER%", lambda v: f"{100 * v:.1f}"),
    ("ref_cer", "refCER%", lambda v: f"{100 * v:.1f}"),
    ("dnsmos_p808", "P808", lambda v: f"{v:.2f}"),
    ("mcd_db", "MCD dB", lambda v: f"{v:.2f}"),
    ("syn_f0_median_hz", "F0 Hz", lambda v: f"{v:.0f}"),
    ("ref_f0_median_hz", "refF0 Hz", lambda v: f"{v:.0f}"),
    ("syn_f0_range_st", "range st", lambda v: f"{v:.1f}"),
    ("ref_f0_range_st", "refRange st", lambda v: f"{v:.1f}"),
    ("speaking_rate_diff_pct", "Δrate%", lambda v: f"{v:+.1f}"),
)


def _speaker_table(by_speaker: dict):
    """Means per speaker: intelligibility, and pitch level/range (median F0, 5-95 % span) beside the reference's."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    cols = [c for c in _SPEAKER_COLUMNS if any(c[0] in s for s in by_speaker.values())]
    t = Table(title="per speaker (means)", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("speaker", no_wrap=True)
    t.add_column("n", justify="right")
    for _, header, _ in cols:
        t.add_column(header, justify="right", no_wrap=True)
    for name, s in by_speaker.items():
        n = max((v.get("n", 0) for v in s.values()), default=0)
        cells = []
        for key, _, fmt in cols:
            v = (s.get(key) or {}).get("mean")
            cells.append(fmt(v) if v is not None and math.isfinite(v) else "–")
        t.add_row(escape(name), str(n), *cells)
    return t


def _caption(report: dict) -> str:
    asr = report["asr"]
    parts = [f"{report['n_utterances']} utterances"]
    parts.append(f"ASR {asr['name']} ({asr['language']})" if "skipped" not in asr else f"ASR skipped: {asr['skipped']}")
    if "skipped" in (report.get("dnsmos") or {}):
        parts.append(f"DNSMOS skipped: {report['dnsmos']['skipped']}")
    if report.get("vocoder_used"):
        parts.append(f"vocoder {report['vocoder_used']}")
    if report["failures"]:
        parts.append(f"{len(report['failures'])} failed")
    from rich.markup import escape

    legend = [text for key, text in _LEGEND.items() if key in report["summary"]]
    return escape("; ".join(parts) + (". " + "; ".join(legend) if legend else ""))


def _plot_compare(path: Path, plots: list[dict]) -> Path:
    """Reference vs synthesised mel, and both F0 tracks on the reference's time axis."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tts_cli.workspace import atomic_write_bytes

    fig, axes = plt.subplots(len(plots), 3, figsize=(15, 3.2 * len(plots)), squeeze=False)
    for row, p in zip(axes, plots):
        vmin, vmax = float(p["ref_mel"].min()), float(p["ref_mel"].max())
        row[0].imshow(p["ref_mel"], origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
        row[0].set_title(f"{p['id']}: reference mel")
        row[1].imshow(p["syn_mel"], origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
        row[1].set_title("synthesised mel")
        # the synthetic F0 drawn at the reference frames DTW paired it with
        ref_f0 = np.where(p["ref_f0"] > 0, p["ref_f0"], np.nan)
        syn_on_ref = np.full(len(ref_f0), np.nan)
        for i, j in p["path"]:
            if p["syn_f0"][j] > 0:
                syn_on_ref[i] = p["syn_f0"][j]
        row[2].plot(ref_f0, label="reference")
        row[2].plot(syn_on_ref, ".-", markersize=2, label="synthesised (DTW-aligned)")
        row[2].set_title("F0 (Hz)")
        row[2].set_xlabel("reference frame")
        row[2].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------- during training

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
    Returns {"mcd", "dur_mae", "cer", "cer_folded", "n"} (None where not measured).
    """
    import torch

    from tts_cli.asr import load_asr
    from tts_cli.config import audio_config
    from tts_cli.metrics import duration_mae_frames, mcd_dtw_mels, summarize, text_scores
    from tts_cli.workspace import Workspace

    ws = Workspace(work)
    rows = list(rows) if rows is not None else ws.load_manifest("val")
    rows = rows[: max(0, int(limit))]
    symbols = list(symbols) if symbols is not None else ws.load_symbols()
    index = {s: i for i, s in enumerate(symbols)}
    if speakers is None:
        names = sorted({str(r.get("speaker", "default")) for r in ws.load_manifest()})
        speakers = {n: i for i, n in enumerate(names)}
    audio_cfg = audio_config(ws.load_config())
    recognizer = load_asr(asr, language=language, threads=asr_threads) if isinstance(asr, str) else asr
    if recognizer is not None and vocoder is None:
        from tts_cli.inference.vocoders import griffin_lim

        def vocoder(mel):
            return griffin_lim(mel, audio_cfg).numpy()

    device = next(model_obj.parameters()).device
    was_training = model_obj.training
    model_obj.eval()
    mcds, maes, cers, folded = [], [], [], []
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
                mcds.append(mcd_dtw_mels(np.load(ref_mel_path), mel.numpy())[0])
            if ws.duration_path(r["id"]).exists():
                pred = out["durations"][0, : len(r["symbols"])].cpu().numpy()
                maes.append(duration_mae_frames(pred, np.load(ws.duration_path(r["id"]))))
            if recognizer is not None:
                wav = np.asarray(vocoder(mel), dtype=np.float32).reshape(-1)
                s = text_scores(r["text"], recognizer.transcribe(wav, int(audio_cfg.sample_rate)), language)
                cers.append(s["cer"])
                folded.append(s["cer_folded"])
    finally:
        model_obj.train(was_training)

    def mean(v):
        return summarize(v)["mean"] if v else None

    return {"mcd": mean(mcds), "dur_mae": mean(maes), "cer": mean(cers), "cer_folded": mean(folded), "n": len(rows)}


__all__ = ["EvaluateError", "evaluate", "evaluate_checkpoint_quick", "default_report_dir", "read_texts"]
