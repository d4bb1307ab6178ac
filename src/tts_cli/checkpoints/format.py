"""Our checkpoint format: one self-describing `.pt`, written atomically, read with weights_only.

Our checkpoint is one self-describing `.pt` (a dict of tensors and plain Python values only,
so `torch.load(weights_only=True)` reads it); its header fields are `CheckpointHeader`:

    format_version  int (FORMAT_VERSION)          kind      "fastpitch" | "hifigan" | "aligner"
    model           state dict (CPU tensors)      config    the architecture (FastPitchConfig dict)
    symbols         list[str], index = symbol id  step      optimizer steps done
    text            {language, phonemiser, espeak_ng, text_type, ...}
    audio           audio settings (AudioConfig dict)
    pitch_stats     {"speakers": {name: {mean, std}}, "corpus": {mean, std}} (Hz)
    speakers        {name: id}
    + optional: optimizer, scheduler, scaler, rng, sampler, epoch, ema, run_config, ...

Every writer goes through `save_checkpoint` (atomic), every reader through
`tts_cli.checkpoints.load` (which also converts NVIDIA's files); older format versions are upgraded
on load by `_MIGRATIONS`.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from tts_cli.errors import CheckpointError
from tts_cli.workspace import atomic_torch_save

FORMAT_VERSION = 1
KINDS = ("fastpitch", "hifigan", "aligner")  # aligner: the run folder of `tts align` (WORK/align_run)
SYMBOL_EMB = "encoder.word_emb.weight"  # rows follow `symbols`
SPEAKER_EMB = "speaker_emb.weight"  # rows follow `speakers`
REQUIRED_KEYS = ("format_version", "kind", "model", "config", "symbols", "step")

WRAPPER_PREFIXES = re.compile(r"^(?:module\.|_orig_mod\.)+")


@dataclass
class CheckpointHeader:
    """What a checkpoint says about itself, typed: the contract between the workspace it was
    trained on, the checkpoint and a voice made from it (a mismatch there is garbage audio without
    an error). Written by `save_checkpoint`, read with `CheckpointHeader.of(ckpt)`."""

    kind: str  # "fastpitch" | "hifigan"
    config: dict  # the architecture (FastPitchConfig / HiFiGANConfig dict)
    step: int = 0  # optimizer steps done
    symbols: list[str] | None = None  # index = symbol id (None for a vocoder)
    text: dict = field(default_factory=dict)  # the front end: language, text_type, phonemiser, espeak_ng, ...
    audio: dict = field(default_factory=dict)  # AudioConfig dict: what a mel frame means
    pitch_stats: dict = field(default_factory=dict)  # {"speakers": {name: {mean, std}}, "corpus": {mean, std}}
    speakers: dict[str, int] = field(default_factory=dict)  # name -> id

    @classmethod
    def of(cls, ckpt: dict) -> "CheckpointHeader":
        return cls(kind=str(ckpt.get("kind")), config=dict(ckpt.get("config") or {}),
                   step=int(ckpt.get("step") or 0),
                   symbols=list(ckpt["symbols"]) if ckpt.get("symbols") is not None else None,
                   text=dict(ckpt.get("text") or {}), audio=dict(ckpt.get("audio") or {}),
                   pitch_stats=dict(ckpt.get("pitch_stats") or {}),
                   speakers={str(k): int(v) for k, v in (ckpt.get("speakers") or {}).items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def with_config(self, config: dict) -> "CheckpointHeader":
        return replace(self, config=dict(config))

    @property
    def language(self) -> str:
        return str(self.text.get("language") or "es")

    def speaker_names(self) -> list[str]:
        """Speaker names in id order."""
        return [n for n, _ in sorted(self.speakers.items(), key=lambda kv: kv[1])]


def clean_state_dict(state: dict) -> dict:
    """Detached CPU tensors, `module.` / `_orig_mod.` prefixes stripped."""
    return {WRAPPER_PREFIXES.sub("", k): (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def float32_state(state: dict) -> dict:
    """Floating tensors as float32 (a bundled voice stores float16 weights; models run in float32)."""
    return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32
                else v) for k, v in state.items()}


# ----------------------------------------------------------------------------- save / load

def save_checkpoint(
    path: str | os.PathLike,
    model_state: dict,
    config: dict,
    symbols: Sequence[str] | None,
    step: int,
    *,
    kind: str = "fastpitch",
    text: dict | None = None,
    audio: dict | None = None,
    pitch_stats: dict | None = None,
    speakers: dict | None = None,
    **extra: Any,
) -> Path:
    """Write a self-describing checkpoint atomically (a killed run never leaves half a file).

    `extra` holds optional state (optimizer, scheduler, scaler, rng, sampler, epoch, ema, ...);
    it must be tensors / numbers / str / list / dict so `weights_only=True` can read it back.
    """
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    header = CheckpointHeader(kind, dict(config), int(step), list(symbols) if symbols is not None else None,
                              dict(text or {}), dict(audio or {}), dict(pitch_stats or {}),
                              {str(k): int(v) for k, v in (speakers or {}).items()})
    ckpt = {"format_version": FORMAT_VERSION, "model": clean_state_dict(model_state), **header.to_dict()}
    for k, v in extra.items():
        if v is not None:
            ckpt[k] = v
    return atomic_torch_save(path, ckpt)


def require_kind(ckpt: dict, kind: str, where: Any, hint: str = "") -> dict:
    """`ckpt` if it is a `kind` checkpoint ("fastpitch", "hifigan"), else CheckpointError naming
    `where` (file or option) and what it is; `hint` says what to do with the other kind."""
    if ckpt.get("kind") != kind:
        got = ckpt.get("kind")
        raise CheckpointError(f"{where}: a {got!r} checkpoint, not {'FastPitch' if kind == 'fastpitch' else kind}"
                              + (f" ({hint})" if hint and got == "hifigan" else ""))
    return ckpt


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True), with CheckpointError naming the file and saying why it is not
    loadable in our words (never torch's advice to load it unsafely)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types; all mean "not loadable"
        text = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:  # a real checkpoint, but with pickled classes: refused, never executed
            raise CheckpointError(
                f"{path}: contains pickled Python objects ({found.group(1)}), which safe loading "
                "(weights_only=True) refuses; only tensors and plain values are allowed") from e
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        msg = detail.group(1).strip() if detail else (text.strip().splitlines() or [type(e).__name__])[0]
        if "weights_only" in msg or "Weights only load failed" in msg:
            msg = "safe loading (weights_only=True) refused it"
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({msg})") from e


# Upgrades from older formats: version -> function(ckpt) -> ckpt of version + 1.
_MIGRATIONS: dict[int, Any] = {}


def _validate_ours(ckpt: dict, path: Path) -> dict:
    version = ckpt.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer tts-cli (format {version}; this version reads up to {FORMAT_VERSION}); "
            "upgrade tts-cli to load it")
    while version < FORMAT_VERSION:
        ckpt = _MIGRATIONS[version](ckpt)
        version = ckpt["format_version"]
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if ckpt["kind"] not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {ckpt['kind']!r} (known: {', '.join(KINDS)})")
    return ckpt
