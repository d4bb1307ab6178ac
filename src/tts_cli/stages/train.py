"""`tts train`: FastPitch on a workspace (durations from `tts align`, pitch from `tts extract-pitch`).

The work is the FastPitch training job (`tts_cli.training.fastpitch_job`: recipe, model, data)
run through the one training skeleton (`tts_cli.training.skeleton`); this stage names the options.
The resolved config is saved as RUN/config.yaml; `resume` restores everything from
RUN/checkpoints/last.pt and continues to `steps`. `eval_every` N adds a quick objective evaluation
of the validation split every N steps (MCD, duration MAE, CER with `eval_asr`), logged as
{"kind": "eval"} rows of RUN/metrics.jsonl; `best_metric` (loss | mcd | cer | dur_mae) says what
best.pt minimises. These may change on `--resume`: evaluating never changes the training itself.
At the end the chosen checkpoint speaks the held-out clips (`tts_cli.evaluation.held_out`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tts_cli.training.fastpitch_job import FastPitchJob, FastPitchOptions
from tts_cli.training.skeleton import run_training


def train(
    work: str | Path,
    out: str | Path,
    config: str | Path | dict | None = None,
    steps: int | None = None,
    init_from: str | Path | None = None,  # a checkpoint, or `bundled` / `bundled:<name>`
    resume: bool = False,
    device: str | None = None,
    amp: Any = None,
    alignment: str | None = None,
    batch_frames: int | None = None,
    max_frames: int | None = None,
    freeze: Sequence[str] = (),
    lr: float | None = None,
    compile: bool | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    eval_every: int | None = None,
    eval_asr: str | None = None,
    eval_utterances: int | None = None,
    best_metric: str | None = None,
    progress: bool = True,
    console=None,
    _hooks: dict | None = None,
) -> dict:
    """Train FastPitch on WORK into the run folder OUT; returns a summary dict."""
    job = FastPitchJob(FastPitchOptions(
        steps=steps, init_from=init_from, amp=amp, alignment=alignment, batch_frames=batch_frames,
        max_frames=max_frames, freeze=tuple(freeze), lr=lr, compile=compile, num_workers=num_workers, seed=seed,
        eval_every=eval_every, eval_asr=eval_asr, eval_utterances=eval_utterances, best_metric=best_metric,
        config=config))
    return run_training(job, work, out, config=config, resume=resume, init_from=init_from, device=device,
                        progress=progress, console=console, hooks=_hooks)
