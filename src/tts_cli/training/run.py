"""What every `tts train` stage does around the Trainer, whatever the model: the recipe, the run
folder (start, resume or refuse), logging and DDP set-up, settings overrides and the closing summary.

Light at import (no torch): `tts_cli.stages.train` re-exports `TrainConfigError` from here.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

log = logging.getLogger("tts_cli.train")


class TrainConfigError(ValueError):
    """Bad train settings or run folder; str() says what to do."""


# ----------------------------------------------------------------------------- config

def read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_train_config(config: str | Path | dict | None, presets: Mapping, default: str,
                      presets_label: str = "presets") -> dict:
    """{model: {...}, train: {...}, ...} from a preset name of `presets`, a recipe or a dict."""
    from tts_cli.config import find_recipe

    if config is None:
        return {"model": {"preset": default}, "train": {}}
    if isinstance(config, dict):
        cfg = dict(config)
    elif str(config).lower() in presets:
        cfg = {"model": {"preset": str(config).lower()}}
    else:
        try:
            path = find_recipe(config)
        except FileNotFoundError as e:
            raise TrainConfigError(f"{e}; {presets_label}: {', '.join(presets)}") from None
        cfg = read_yaml(path)
    cfg.setdefault("model", {})
    cfg.setdefault("train", {})
    return cfg


def train_settings(train_dict: dict, **overrides):
    """TrainSettings from a `train:` section plus the command-line values given (None = not given)."""
    from tts_cli.training.loop import TrainSettings

    merged = {**train_dict, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return TrainSettings.from_dict(merged)
    except (TypeError, ValueError) as e:
        raise TrainConfigError(str(e)) from None


# ----------------------------------------------------------------------------- the run folder

def open_run(run: Path, kind: str, config, resolve: Callable[[object], dict], resume: bool,
             init_from, is_main: bool) -> tuple[dict, dict | None]:
    """(resolved config, checkpoint to resume from or None) for the run folder RUN.

    `--resume` with RUN/checkpoints/last.pt continues that run with its saved config; without
    `--resume` an existing run is refused rather than overwritten."""
    from tts_cli.training.loop import load_training_checkpoint

    last = run / "checkpoints" / "last.pt"
    if resume and last.exists():
        ckpt = load_training_checkpoint(last)
        if ckpt.get("kind") != kind:
            raise TrainConfigError(f"{last}: a {ckpt.get('kind')} run; resume it with --model {ckpt.get('kind')}")
        if init_from:
            raise TrainConfigError("--resume and --init-from exclude each other: resume restores the run in --out")
        saved = run / "config.yaml"
        return resolve(read_yaml(saved) if saved.exists() else
                       {"model": ckpt["config"], "train": ckpt.get("train", {})}), ckpt
    if resume and is_main:
        log.warning("%s: nothing to resume yet; starting a new run", run)
    if last.exists():
        raise TrainConfigError(f"{run} already holds a run (checkpoints/last.pt); "
                               "add --resume to continue it or choose another --out")
    return resolve(config), None


def write_run_config(run: Path, resolved: dict) -> None:
    from tts_cli.config import dump_yaml
    from tts_cli.workspace import atomic_write_text

    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "config.yaml", dump_yaml(resolved))


# ----------------------------------------------------------------------------- process set-up

def setup_logging(is_main: bool) -> None:
    ours = logging.getLogger("tts_cli")
    if not ours.handlers and not logging.getLogger().handlers:  # the app's own logging config wins
        from rich.logging import RichHandler

        ours.addHandler(RichHandler(show_path=False, show_time=False))
    ours.setLevel(logging.INFO if is_main else logging.ERROR)


@contextmanager
def distributed_run(device: str | None) -> Iterator[tuple]:
    """(DistInfo, torch.device) for this process (DDP from torchrun's env vars); torn down on exit."""
    from tts_cli.training.loop import cleanup_distributed, setup_distributed

    dist_info, dev = setup_distributed(device)
    setup_logging(dist_info.is_main)
    try:
        yield dist_info, dev
    finally:
        cleanup_distributed()


# ----------------------------------------------------------------------------- fit + summary

def fit(task, settings, run: Path, loader, sampler, val_batches: list, device, dist_info, resume_ckpt,
        progress: bool, hooks: dict | None, console, model: str, **extra) -> dict:
    """Run the Trainer; the summary dict (plus `extra`), printed as a table on the main process."""
    from tts_cli.training.loop import Trainer

    trainer = Trainer(task, settings, run, loader, sampler, val_batches=val_batches, device=device,
                      dist_info=dist_info, resume_from=resume_ckpt, show_progress=progress, hooks=hooks)
    result = trainer.fit()
    summary = {
        "run": str(run), "step": result.step, "steps": settings.steps, "epoch": result.epoch,
        "stopped": result.stopped, "last_checkpoint": result.last_checkpoint,
        "best_checkpoint": result.best_checkpoint, "best_val_loss": result.best_val_loss,
        "best_metric": result.best_metric, "best_metric_value": result.best_metric_value,
        "losses": result.last_losses, "frames_per_s": result.frames_per_s,
        "skipped_steps": result.skipped_steps, **extra,
    }
    if dist_info.is_main:
        print_summary(console, summary, model)
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


__all__ = ["TrainConfigError", "load_train_config", "train_settings", "open_run", "write_run_config",
           "setup_logging", "distributed_run", "fit", "print_summary", "read_yaml"]
