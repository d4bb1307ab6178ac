"""The contract between the shared training loop and a model family: what the Trainer calls each step."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch


class Task(Protocol):
    """What the loop needs from a model family.

    model: the nn.Module trained (the loop moves it, wraps it for DDP/compile).
    find_unused_parameters: passed to DDP.
    """

    model: torch.nn.Module
    find_unused_parameters: bool

    def to_device(self, batch: dict, device: torch.device) -> dict: ...

    def loss(self, model: torch.nn.Module, batch: dict, step: int, epoch: int) -> tuple[torch.Tensor, dict]:
        """Forward + loss: (total loss, {term name: scalar tensor})."""

    def frames(self, batch: dict) -> int:
        """Mel frames in the batch (for frames/s)."""

    def utterance_ids(self, batch: dict) -> list[str]: ...

    def validate(self, model: torch.nn.Module, batches: list[dict], step: int, samples_dir: Path | None) -> dict:
        """Mean validation terms incl. "loss"; writes PNG/WAV samples into samples_dir when given."""

    def checkpoint_meta(self) -> dict:
        """The self-describing part of a checkpoint (kind, config, symbols, text, audio, ...)."""
