"""The one load dispatch: a file (or a dict already read) -> our checkpoint layout, whatever wrote it;
and a FastPitch built from one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from tts_cli.checkpoints.format import _validate_ours, clean_state_dict, float32_state, require_kind, safe_torch_load
from tts_cli.checkpoints.nvidia_fastpitch import from_nvidia_fastpitch, is_nvidia_fastpitch
from tts_cli.errors import CheckpointError
from tts_cli.models.fastpitch import FastPitch, FastPitchConfig


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    symbols: Sequence[str] | None = None,
    prefer_ema: bool = False,
) -> dict:
    """Read one of our checkpoints, or an NVIDIA FastPitch one converted to our layout.

    Raises CheckpointError with the file name and the reason for anything else: a missing or
    unreadable file, pickled objects (weights_only refuses them), a newer/unknown format version.
    `symbols` / `prefer_ema` only matter for NVIDIA files (symbol table, EMA weights).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    obj = safe_torch_load(path, map_location)
    return checkpoint_from_dict(obj, path, symbols=symbols, prefer_ema=prefer_ema)


def checkpoint_from_dict(obj: Any, path: str | os.PathLike, *, symbols: Sequence[str] | None = None,
                         prefer_ema: bool = False) -> dict:
    """What load_checkpoint does after reading the file, for a caller that already holds its dict."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, expected a dict)")
    if "format_version" in obj:
        return _validate_ours(obj, path)
    if is_nvidia_fastpitch(obj):
        return from_nvidia_fastpitch(obj, symbols=symbols, prefer_ema=prefer_ema, source=str(path))
    raise CheckpointError(
        f"{path}: not a tts-cli or NVIDIA FastPitch checkpoint (top-level keys: {', '.join(map(str, list(obj)[:8]))})")


def build_fastpitch(ckpt: dict, *, aligner: bool | None = None, strict: bool = True):
    """A FastPitch built from a checkpoint's config with its weights loaded (synthesis, resume).
    `aligner=False` drops the training-only aligner (its weights are then ignored)."""
    require_kind(ckpt, "fastpitch", "build_fastpitch")
    cfg = FastPitchConfig.from_dict(dict(ckpt["config"]))
    if aligner is not None:
        cfg.aligner = aligner
        if not aligner:
            cfg.alignment = "external"
    model = FastPitch(cfg)
    state = float32_state(clean_state_dict(ckpt["model"]))  # float16 voices too
    if not cfg.aligner:
        state = {k: v for k, v in state.items() if not k.startswith("attention.")}
    model.load_state_dict(state, strict=strict)
    return model
