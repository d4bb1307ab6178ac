"""`tts train --model hifigan`: a HiFi-GAN vocoder on a workspace's audio (`tts_cli.training.hifigan_job`),
through the same skeleton as FastPitch: run folder, resume, AMP, DDP, checkpoints and progress."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tts_cli.training.hifigan_job import HiFiGANJob, HiFiGANOptions
from tts_cli.training.skeleton import run_training


def train_hifigan(
    work: str | Path,
    out: str | Path,
    config: str | Path | dict | None = None,
    steps: int | None = None,
    init_from: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    amp: Any = None,
    gta: str | Path | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    compile: bool | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    console=None,
    _hooks: dict | None = None,
) -> dict:
    """Train a HiFi-GAN vocoder on WORK into the run folder OUT; returns a summary dict.
    `gta=FASTPITCH_CKPT` trains on that FastPitch's ground-truth-aligned mels."""
    job = HiFiGANJob(HiFiGANOptions(steps=steps, init_from=init_from, amp=amp, gta=gta, lr=lr, batch_size=batch_size,
                                    compile=compile, num_workers=num_workers, seed=seed))
    return run_training(job, work, out, config=config, resume=resume, init_from=init_from, device=device,
                        progress=progress, console=console, hooks=_hooks)
