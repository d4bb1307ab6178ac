"""The one sequence every `tts train` run follows, whatever it trains.

    process (DDP ranks, logging) -> run lock -> run folder (new, or --resume) -> the job prepares
    settings, model, task and data -> RUN/config.yaml -> the shared Trainer -> summary -> the job's
    closing check

A *job* (`TrainingJob`) is what differs between model families: it resolves its recipe and builds
its model, its `Task` (what the loop calls each step) and its data. FastPitch
(`tts_cli.training.fastpitch_job`), HiFi-GAN (`tts_cli.training.hifigan_job`) and the aligner of
`tts align` (`tts_cli.stages.align_training.AlignerJob`, run folder WORK/align_run) are the jobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tts_cli.training.loop import Trainer
from tts_cli.training.run import distributed_run, open_run, run_lock, write_run_config
from tts_cli.training.settings import TrainSettings
from tts_cli.workspace import Workspace


@dataclass
class RunContext:
    """What the skeleton knows before the job builds anything."""

    ws: Workspace
    run: Path
    cfg: dict  # the resolved recipe ({model: ..., train: ..., ...})
    resume_ckpt: dict | None  # RUN/checkpoints/last.pt with --resume, else None
    dist: Any  # tts_cli.training.runtime.DistInfo
    device: Any  # torch.device
    console: Any  # rich Console
    progress: bool = True  # progress bars (off in tests and under other tools)


@dataclass
class TrainingPlan:
    """What the job built: the skeleton writes `resolved`, prints `banner` and fits."""

    task: Any  # a tts_cli.training.loop.Task
    settings: TrainSettings
    loader: Any  # torch DataLoader
    sampler: Any  # set_epoch / set_start / __len__
    val_batches: list
    resolved: dict  # saved as RUN/config.yaml
    banner: str
    meta: dict = field(default_factory=dict)  # the self-describing part of its checkpoints
    summary_extra: dict = field(default_factory=dict)  # added to the summary dict
    show_summary: bool = True  # the "tts train" table at the end (a stage with its own table: False)


class TrainingJob(Protocol):
    kind: str  # "fastpitch" | "hifigan": checkpoint kind, and the --model a resume needs

    def resolve_config(self, config: Any) -> dict: ...

    def prepare(self, ctx: RunContext) -> TrainingPlan: ...

    def finish(self, ctx: RunContext, plan: TrainingPlan, summary: dict) -> dict: ...


def run_training(job: TrainingJob, work, out, *, config=None, resume: bool = False, init_from=None,
                 device: str | None = None, progress: bool = True, console=None, hooks: dict | None = None,
                 option: str = "--out") -> dict:
    """Train `job` on the workspace WORK into the run folder OUT; returns the summary dict.
    `option` names OUT in messages (the command-line option or folder the user chose it by)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    with distributed_run(device) as (dist_info, dev), run_lock(Path(out), dist_info.is_main, option):
        run = Path(out)
        ws = Workspace(work)
        cfg, resume_ckpt = open_run(run, job.kind, config, job.resolve_config, resume, init_from, dist_info.is_main)
        ctx = RunContext(ws, run, cfg, resume_ckpt, dist_info, dev, console, progress)
        plan = job.prepare(ctx)
        if dist_info.is_main:
            write_run_config(run, plan.resolved)
            console.print(plan.banner)
        summary = fit(plan, ctx, hooks, job.kind)
        return job.finish(ctx, plan, summary)


def fit(plan: TrainingPlan, ctx: RunContext, hooks: dict | None, kind: str) -> dict:
    """Run the Trainer; the summary dict, printed as a table on the main process."""
    trainer = Trainer(plan.task, plan.settings, ctx.run, plan.loader, plan.sampler, val_batches=plan.val_batches,
                      device=ctx.device, dist_info=ctx.dist, resume_from=ctx.resume_ckpt, show_progress=ctx.progress,
                      hooks=hooks)
    result = trainer.fit()
    summary = {
        "run": str(ctx.run), "step": result.step, "steps": plan.settings.steps, "epoch": result.epoch,
        "stopped": result.stopped, "last_checkpoint": result.last_checkpoint,
        "best_checkpoint": result.best_checkpoint, "best_val_loss": result.best_val_loss,
        "best_metric": result.best_metric, "best_metric_value": result.best_metric_value,
        "losses": result.last_losses, "frames_per_s": result.frames_per_s,
        "skipped_steps": result.skipped_steps, **plan.summary_extra,
    }
    if ctx.dist.is_main and plan.show_summary:
        print_summary(ctx.console, summary, kind)
    return summary


def print_summary(console, s: dict, model: str = "fastpitch") -> None:
    from rich.table import Table

    t = Table(title=f"tts train: {s['stopped']}", show_header=False)
    t.add_row("run", s["run"])
    t.add_row("step", f"{s['step']} / {s['steps']} (epoch {s['epoch']})")
    for k, v in (s["losses"] or {}).items():
        t.add_row(f"loss {k}", f"{v:.4f}")
    if s["best_val_loss"] is not None:
        t.add_row("best val loss", f"{s['best_val_loss']:.4f}")
    if s.get("best_metric", "loss") != "loss" and s.get("best_metric_value") is not None:
        t.add_row(f"best {s['best_metric']} (best.pt)", f"{s['best_metric_value']:.4f}")
    if s["frames_per_s"]:
        t.add_row("frames/s", f"{s['frames_per_s']:,.0f}")
    if s["skipped_steps"]:
        t.add_row("skipped (non-finite)", str(s["skipped_steps"]))
    t.add_row("last checkpoint", str(s["last_checkpoint"]))
    if s["best_checkpoint"]:
        t.add_row("best checkpoint", s["best_checkpoint"])
    if s["stopped"] == "interrupted":
        model_flag = "" if model == "fastpitch" else f" --model {model}"
        t.add_row("continue with", f"tts train WORK{model_flag} --out {s['run']} --resume --steps {s['steps']}")
    console.print(t)
