"""The aligner's own file (WORK/aligner.pt of `tts align`, and a voice's aligner.pt): not our
FastPitch/HiFi-GAN format but a dict marked `format: tts-cli-aligner`, read with weights_only.
It holds the aligner's weights, optimizer, RNG state, settings, symbol table and the mel settings
it learned on; a voice ships it without the optimizer and RNG state."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tts_cli.checkpoints.load import load_checkpoint
from tts_cli.errors import CheckpointError
from tts_cli.workspace import atomic_torch_save

ALIGNER_FORMAT = "tts-cli-aligner"


def save_aligner_checkpoint(path: Path, model, step: int, cfg: Any, symbols: list[str], n_mel: int, seed: int,
                            loss: float | None, audio: dict | None = None) -> None:
    """WORK/aligner.pt: the weights and what they fit (training resumes from WORK/align_run)."""
    atomic_torch_save(path, {
        "format": ALIGNER_FORMAT, "version": 1, "step": int(step), "seed": int(seed),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": asdict(cfg), "symbols": list(symbols), "n_mel_channels": int(n_mel),
        "loss": None if loss is None else float(loss),
        "audio": dict(audio or {}),  # the mel settings it learned on (init_from compares them)
    })


def read_aligner_file(path: str | Path) -> dict | None:
    """The dict of an aligner.pt, or None when the file is not one (or unreadable)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "not an aligner" to the caller
        return None
    return obj if isinstance(obj, dict) and obj.get("format") == ALIGNER_FORMAT else None


def read_aligner_source(path: Path) -> dict:
    """A standalone aligner.pt, or any FastPitch checkpoint the one checkpoint loader reads
    (ours or NVIDIA's, converted to our layout: weights under `model`, symbols at the top)."""
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        obj = read_aligner_file(path)
        if obj is None:
            raise err from None
        return obj
