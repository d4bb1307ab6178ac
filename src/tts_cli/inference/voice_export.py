"""`tts export-voice`: a training run (+ a HiFi-GAN run) -> a voice folder others can speak with."""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Sequence

from tts_cli.checkpoints.aligner import read_aligner_file
from tts_cli.checkpoints.format import FORMAT_VERSION, CheckpointHeader, clean_state_dict, require_kind
from tts_cli.checkpoints.hifigan import load_hifigan
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.config import DEFAULT_AUDIO, check_audio_match
from tts_cli.errors import CheckpointError, VocoderError, VoiceError
from tts_cli.inference.voices import (
    _NAME,
    ACOUSTIC_FILE,
    ALIGNER_FILE,
    VOCODER_FILE,
    VOICE_FILE,
    VOICE_FORMAT_VERSION,
    Voice,
    load_voice,
)
from tts_cli.models.hifigan import PRESETS
from tts_cli.workspace import atomic_torch_save, atomic_write_bytes, atomic_write_json, resolve_checkpoint


def half_state(state: dict) -> dict:
    """float32 tensors (more than one value) -> float16; a tensor that would overflow float16's
    range stays float32, as do scalars (pitch statistics) and integer tensors."""
    import torch

    out = {}
    for k, v in state.items():
        if torch.is_tensor(v) and v.dtype == torch.float32 and v.numel() > 1:
            h = v.half()
            out[k] = h if bool(torch.isfinite(h).all()) or not bool(torch.isfinite(v).all()) else v
        else:
            out[k] = v
    return out


def _acoustic_payload(ckpt: dict, fp16: bool, keep_aligner: bool) -> tuple[dict, dict]:
    """(inference-only FastPitch checkpoint, its description for voice.json)."""
    state = clean_state_dict(ckpt["model"])
    config = dict(ckpt["config"])
    if not keep_aligner:  # synthesis builds FastPitch with aligner=False: the aligner is training-only
        state = {k: v for k, v in state.items() if not k.startswith("attention.")}
        config["aligner"], config["alignment"] = False, "external"
    header = CheckpointHeader.of(ckpt).with_config(config)
    out = {"format_version": FORMAT_VERSION, "model": half_state(state) if fp16 else state, **header.to_dict()}
    model = build_fastpitch(out, aligner=keep_aligner and bool(config.get("aligner")))  # fails now, not at synthesis
    info = {"model": "FastPitch", "parameters": sum(p.numel() for p in model.parameters()), "step": out["step"],
            "dtype": "float16" if fp16 else "float32", "aligner": bool(keep_aligner and config.get("aligner")),
            "text_type": out["text"].get("text_type"), "espeak_ng": out["text"].get("espeak_ng"),
            "d_model": config.get("d_model")}
    return out, info


def _vocoder_payload(path: Path, acoustic_audio: dict, fp16: bool) -> tuple[dict, dict]:
    """(inference-only HiFi-GAN checkpoint, its description) from any file load_hifigan reads."""
    try:
        gen, audio, known, fmt = load_hifigan(path)
        if known:
            check_audio_match(acoustic_audio, audio, vocoder_name=f"vocoder {path.name}")
        else:  # jik876 files carry no audio settings: the shapes must fit, the rest is the model's
            check_audio_match({k: acoustic_audio[k] for k in ("hop_length", "n_mels") if k in acoustic_audio},
                              {"hop_length": gen.config.hop_length, "n_mels": gen.config.n_mels},
                              vocoder_name=f"vocoder {path.name}")
    except VocoderError as e:
        raise VoiceError(str(e)) from None
    step = 0
    if fmt == "tts-cli":
        try:
            step = int(load_checkpoint(path).get("step") or 0)
        except CheckpointError:
            pass
    gen.remove_weight_norm()  # inference form: one `weight` per conv instead of weight_g + weight_v
    state = {k: v.detach().cpu() for k, v in gen.state_dict().items()}
    full_audio = {**DEFAULT_AUDIO, **acoustic_audio, **(audio if known else {})}
    cfg = gen.config.to_dict()
    variant = next((n.upper() for n, p in PRESETS.items() if p.to_dict() == cfg), None)
    out = {"format_version": FORMAT_VERSION, "kind": "hifigan", "model": half_state(state) if fp16 else state,
           "config": cfg, "symbols": None, "step": step, "text": {}, "audio": full_audio, "pitch_stats": {},
           "speakers": {}, "source": {"format": fmt, "file": path.name}}
    info = {"model": "HiFi-GAN", "variant": variant or "custom", "parameters": sum(v.numel() for v in state.values()),
            "step": step, "dtype": "float16" if fp16 else "float32", "source_format": fmt}
    return out, info


def _aligner_payload(path: Path, fp16: bool) -> tuple[dict, dict]:
    """A `tts align` aligner.pt without its optimizer and RNG state: what a new workspace starts from."""
    ckpt = read_aligner_file(path)
    if ckpt is None:
        raise VoiceError(f"{path}: not a readable `tts align` aligner.pt")
    state = half_state(ckpt["model"]) if fp16 else ckpt["model"]
    keep = ("format", "version", "step", "seed", "config", "symbols", "n_mel_channels", "loss", "audio")
    payload = {**{k: ckpt[k] for k in keep if k in ckpt}, "model": state}
    cfg = ckpt.get("config") or {}
    info = {"step": int(ckpt.get("step", 0)), "symbols": len(ckpt.get("symbols") or []),
            "query_win_length": int(cfg.get("query_win_length") or 0),
            "dtype": "float16" if fp16 else "float32"}
    return payload, info


def export_voice(
    acoustic_ckpt: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    name: str,
    vocoder_ckpt: str | os.PathLike | None = None,
    fp16: bool = True,
    licence: str = "NOASSERTION",
    attribution: str = "",
    description: str = "",
    summary: dict | None = None,
    notices: Sequence[str | os.PathLike] = (),
    language: str | None = None,
    keep_aligner: bool = False,
    aligner_ckpt: str | os.PathLike | None = None,
    overwrite: bool = False,
    console=None,
) -> Voice:
    """Make the voice `name` from a FastPitch checkpoint (+ a HiFi-GAN one; None = the default
    vocoder, the universal HiFi-GAN V1).

    out_dir: the voices folder (the voice goes to OUT_DIR/NAME/), or the voice folder itself when it
    is already called NAME. Checkpoints may be files or `tts train` run folders (best.pt, else
    last.pt). Only what inference needs is kept (see the module docstring); `keep_aligner` keeps
    the FastPitch aligner (for `tts align --from-checkpoint` or learned-alignment fine-tuning);
    `aligner_ckpt` (a `tts align` WORK/aligner.pt) ships the aligner new recordings start from.
    `notices` are LICENSE / NOTICE files copied into the folder. Files are written atomically,
    voice.json last, so a failed export never leaves something that looks like a voice.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    folder = _target_folder(Path(out_dir), name, overwrite)
    acoustic_src = resolve_checkpoint(acoustic_ckpt, error=VoiceError)
    try:
        ckpt = require_kind(load_checkpoint(acoustic_src), "fastpitch", acoustic_src, "pass it as the vocoder")
    except CheckpointError as e:
        raise VoiceError(str(e)) from None
    parts = {ACOUSTIC_FILE: (acoustic_src, *_acoustic_payload(ckpt, fp16, keep_aligner))}
    acoustic = parts[ACOUSTIC_FILE][1]
    if vocoder_ckpt is not None and str(vocoder_ckpt).lower() not in ("griffin-lim", "griffinlim", "gl"):
        vocoder_src = resolve_checkpoint(vocoder_ckpt, error=VoiceError)
        parts[VOCODER_FILE] = (vocoder_src, *_vocoder_payload(vocoder_src, acoustic["audio"], fp16))
    if aligner_ckpt is not None:
        parts[ALIGNER_FILE] = (Path(aligner_ckpt), *_aligner_payload(Path(aligner_ckpt), fp16))
    notice_paths = [Path(n) for n in notices]
    for n in notice_paths:
        if not n.is_file():
            raise VoiceError(f"{n}: no such licence/notice file")

    try:
        old = load_voice(folder) if (folder / VOICE_FILE).exists() else None
    except VoiceError:
        old = None  # a broken earlier export: replaced as a whole
    written = _write_files(folder, parts, notice_paths)
    info = {rel: part[2] for rel, part in parts.items()}
    meta = _voice_json(name, ckpt, acoustic, info, [n.name for n in notice_paths], summary, language=language,
                       licence=licence, attribution=attribution, description=description)
    atomic_write_json(folder / VOICE_FILE, meta)
    if old is not None:
        _remove_unlisted(folder, old, {ACOUSTIC_FILE, VOICE_FILE, *(w[0] for w in written)})
    voice = load_voice(folder)
    _print_export(console, voice, folder, written, fp16)
    if not licence or licence == "NOASSERTION":
        console.print("[yellow]warning:[/] no --licence given: voice.json says NOASSERTION", highlight=False)
    return voice


def _target_folder(out_dir: Path, name: str, overwrite: bool) -> Path:
    """OUT_DIR/NAME (or OUT_DIR itself when it is called NAME), refusing to clobber what is not ours."""
    if not _NAME.match(name or ""):
        raise VoiceError(f"voice name {name!r}: use letters, digits, '_', '-' or '.' (it names the folder)")
    folder = out_dir if out_dir.name == name else out_dir / name
    if folder.exists() and any(folder.iterdir()):
        if not (folder / VOICE_FILE).exists():
            raise VoiceError(f"{folder}: exists and is not a voice folder (no {VOICE_FILE}); choose another --name")
        if not overwrite:
            raise VoiceError(f"{folder}: voice {name!r} already exists; add --force to replace it")
    return folder


def _write_files(folder: Path, parts: dict, notice_paths: list[Path]) -> list[tuple[str, Path, Path]]:
    """The weight files and notices, atomically: [(file name, source, written path)]."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [(rel, src, atomic_torch_save(folder / rel, payload)) for rel, (src, payload, _) in parts.items()]
    for n in notice_paths:
        written.append((n.name, n, atomic_write_bytes(folder / n.name, n.read_bytes())))
    return written


def _voice_json(name: str, ckpt: dict, acoustic: dict, info: dict, notices: list[str], summary: dict | None, *,
                language: str | None, licence: str, attribution: str, description: str) -> dict:
    speakers = [n for n, _ in sorted(acoustic["speakers"].items(), key=lambda kv: kv[1])] or ["default"]
    training = {"acoustic_step": acoustic["step"]}
    for key in ("best_val_loss", "epoch"):
        if ckpt.get(key) is not None:
            training[f"acoustic_{key}"] = ckpt[key]
    if ckpt.get("best_metric") not in (None, "loss") and ckpt.get("best_metric_value") is not None:
        training[f"acoustic_best_{ckpt['best_metric']}"] = ckpt["best_metric_value"]
    if info.get(VOCODER_FILE):
        training["vocoder_step"] = info[VOCODER_FILE]["step"]
    training.update(summary or {})
    return {
        "format_version": VOICE_FORMAT_VERSION,
        "name": name,
        "language": language or str(acoustic["text"].get("language") or ""),
        "speakers": speakers,
        "sample_rate": int(acoustic["audio"].get("sample_rate") or 22050),
        "licence": licence or "NOASSERTION",
        "attribution": attribution or "",
        "description": description or "",
        "files": {"acoustic": ACOUSTIC_FILE, "vocoder": VOCODER_FILE if VOCODER_FILE in info else None,
                  "notices": notices, **({"aligner": ALIGNER_FILE} if ALIGNER_FILE in info else {})},
        "acoustic": info[ACOUSTIC_FILE],
        **({"aligner": info[ALIGNER_FILE]} if info.get(ALIGNER_FILE) else {}),
        "vocoder": info.get(VOCODER_FILE) or {"model": "default (universal HiFi-GAN V1)"},
        "training": training,
        "created": date.today().isoformat(),
    }


def _remove_unlisted(folder: Path, old: Voice, keep: set[str]) -> None:
    """Files the previous export listed and this one does not (e.g. a dropped vocoder)."""
    for rel in [old.files.get("vocoder"), old.files.get("aligner"), *(old.files.get("notices") or [])]:
        if rel and rel not in keep and (folder / rel).is_file():
            (folder / rel).unlink()


def _print_export(console, voice: Voice, folder: Path, written: list, fp16: bool) -> None:
    from rich.table import Table

    table = Table(title=f"voice {voice.name} -> {folder}")
    for col, justify in (("file", "left"), ("from", "left"), ("source MB", "right"), ("written MB", "right")):
        table.add_column(col, justify=justify)
    for rel, src, dst in written:
        table.add_row(rel, str(src), f"{src.stat().st_size / 1e6:.2f}", f"{dst.stat().st_size / 1e6:.2f}")
    table.caption = (f"{voice.size_bytes / 1e6:.2f} MB in all; {'float16' if fp16 else 'float32'} weights; "
                     f"vocoder {voice.vocoder_label}; licence {voice.licence}")
    console.print(table)
