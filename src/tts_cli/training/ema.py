"""Exponential moving average of a model's weights (NVIDIA FastPitch's --ema-decay).

On minutes of data the weights after any one step carry that step's batch noise; their running
average generalises better and makes the checkpoint less of a lottery. Parameters are averaged,
buffers (statistics, not learned) follow the model as they are.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float, averaged: dict | None = None):
        self.decay = float(decay)
        self.params = {name for name, _ in model.named_parameters()}
        start = averaged if averaged is not None else model.state_dict()
        self.averaged = {k: v.detach().clone() for k, v in start.items()}

    def decay_at(self, step: int) -> float:
        """The decay, ramped up over the first steps so the start does not weigh for ever."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        for name, value in model.state_dict().items():
            avg = self.averaged[name]
            if name in self.params and value.is_floating_point():
                avg.lerp_(value.to(avg.dtype), weight)
            else:
                avg.copy_(value)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The averaged weights in `model` for the block (validation, evaluation), then its own again."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.averaged)
        try:
            yield
        finally:
            model.load_state_dict(own)
